// Alerts page: GET /api/v1/alerts with the filters in the page's own query string, the
// silences (operators add and end them), and the rules as configured (read-only). Live: an
// `alert` event on the stream re-reads the table (debounced).
import {
	api, header, live, el, fill, $, debounce, fmtAge, timeEl, badge, notice, start, deviceHref,
	canOperate
} from './common.js';

const FILTERS = ['state', 'rule', 'site'];
const LIMIT = 50;
const state = { offset: 0 };
const STATE_CLASS = { firing: 'stale', silenced: 'unknown', resolved: 'ok' };

function readUrl() {
	const p = new URLSearchParams(location.search);
	for (const k of FILTERS)
		state[k] = p.get(k) || '';
	state.offset = Math.max(0, parseInt(p.get('offset'), 10) || 0);
	for (const k of FILTERS) {
		const sel = $('#f-' + k);
		if (state[k] && ![...sel.options].some((o) => o.value === state[k]))
			sel.append(el('option', { value: state[k] }, state[k]));
		sel.value = state[k];
	}
}

function params(withPage) {
	const p = new URLSearchParams();
	for (const k of FILTERS)
		if (state[k])
			p.set(k, state[k]);
	if (withPage) {
		p.set('limit', LIMIT);
		p.set('offset', state.offset);
	}
	return p;
}

function subject(a) {
	if (a.subject_kind === 'udid')
		return el('a', { href: deviceHref(a.udid), class: 'mono' },
			(a.detail && a.detail.serial) || a.udid);
	if (a.subject_kind === 'agent')
		return el('span', { class: 'mono' }, a.agent);
	return a.subject_kind === 'station' ? a.site + ' / ' + a.station : a.site;
}

function notified(a) {
	if (a.silenced)
		return el('span', { class: 'muted' }, 'silenced');
	if (a.inhibited)
		return el('span', { class: 'muted', title: 'explained by alert ' + a.inhibited_by },
			'inhibited');
	return a.notified ? 'yes' : el('span', { class: 'muted' }, 'pending');
}

function row(a) {
	return el('tr', { 'data-id': a.id },
		el('td', {}, badge(a.state, STATE_CLASS[a.state])),
		el('td', {}, el('code', {}, a.rule)),
		el('td', {}, subject(a)),
		el('td', {}, [a.site, a.station].filter((x) => x).join(' / ') || '—'),
		el('td', { class: 'wrap' }, a.summary),
		el('td', {}, timeEl(a.fired_at)),
		el('td', {}, a.resolved_at ? timeEl(a.resolved_at) : '—'),
		el('td', {}, notified(a)));
}

async function load() {
	history.replaceState(null, '', '/alerts' + (params(false).toString() ?
		'?' + params(false) : ''));
	try {
		const r = await api('/api/v1/alerts?' + params(true));
		fill($('#alerts tbody'), r.alerts.length ? r.alerts.map(row) :
			el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'No alerts match.')));
		fill($('#count'), r.total + (r.total === 1 ? ' alert' : ' alerts'));
		fill($('#range'), r.total ? (state.offset + 1) + '–' +
			(state.offset + r.alerts.length) + ' of ' + r.total : '');
		$('#prev').disabled = state.offset === 0;
		$('#next').disabled = state.offset + r.alerts.length >= r.total;
		notice(null);
	} catch (e) {
		notice('Alerts cannot be read: ' + e.message, true);
	}
}

async function loadSites() {
	try {
		const s = await api('/api/v1/summary');
		const sel = $('#f-site');
		for (const x of s.by_site || [])
			if (x.site && ![...sel.options].some((o) => o.value === x.site))
				sel.append(el('option', { value: x.site }, x.site));
		sel.value = state.site;
	} catch (e) {
		// the filter still works by address
	}
}

function silenceWhat(s) {
	if (s.scope === 'udid')
		return el('a', { href: deviceHref(s.udid), class: 'mono' }, s.udid);
	if (s.scope === 'agent')
		return 'agent ' + s.agent;
	if (s.scope === 'station')
		return s.site + ' / ' + s.station;
	return 'site ' + s.site;
}

async function endSilence(id) {
	try {
		await api('/api/v1/silences/' + id, { method: 'DELETE' });
		loadSilences();
	} catch (e) {
		notice('The silence cannot be ended: ' + e.message, true);
	}
}

async function loadSilences() {
	try {
		const r = await api('/api/v1/silences?active=true');
		fill($('#silences tbody'), r.silences.length ? r.silences.map((s) => el('tr', {},
			el('td', {}, el('code', {}, s.rule)),
			el('td', {}, silenceWhat(s)),
			el('td', {}, timeEl(s.ends_at)),
			el('td', {}, s.created_by),
			el('td', { class: 'wrap' }, s.comment),
			el('td', {}, canOperate() ? el('button', { type: 'button',
				onclick: () => endSilence(s.id) }, 'End') : null))) :
			el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No silence in force.')));
	} catch (e) {
		notice('Silences cannot be read: ' + e.message, true);
	}
}

async function addSilence(ev) {
	ev.preventDefault();
	const scope = $('#s-scope').value;
	const value = $('#s-value').value.trim();
	const body = {
		rule: $('#s-rule').value,
		ends_at: new Date(Date.now() + $('#s-hours').value * 3600000).toISOString()
			.replace(/\.\d+Z$/, 'Z'),
		comment: $('#s-comment').value.trim(),
	};
	if (scope === 'station') {
		body.site = value;
		body.station = $('#s-station').value.trim();
	} else {
		body[scope] = value;
	}
	try {
		await api('/api/v1/silences', { method: 'POST', body });
		$('#s-value').value = '';
		$('#s-comment').value = '';
		notice(null);
		loadSilences();
	} catch (e) {
		notice('The silence was not added: ' + e.message, true);
	}
}

function threshold(r) {
	if (r.threshold) {
		const sites = Object.entries(r.threshold.by_site || {})
			.map(([s, v]) => s + ' ' + fmtAge(v));
		return fmtAge(r.threshold.seconds) + (sites.length ? ' (' + sites.join(', ') + ')' : '');
	}
	return '≥ ' + r.min_pct + ' % and ≥ ' + r.min_phones + ' phones';
}

async function loadRules() {
	try {
		const r = await api('/api/v1/alerts/rules');
		fill($('#rules tbody'), r.rules.map((x) => el('tr', {},
			el('td', {}, el('code', {}, x.rule)),
			el('td', { class: 'wrap' }, x.description),
			el('td', {}, threshold(x)),
			el('td', {}, x.inhibited_by ? el('code', {}, x.inhibited_by) : '—'))));
		fill($('#rules-note'), 'Evaluated every ' + fmtAge(r.interval_s) + '; an alert fires ' +
			'after its condition held ' + fmtAge(r.for_s) + ' and resolves after it was gone ' +
			fmtAge(r.clear_for_s) + '.');
	} catch (e) {
		notice('Rules cannot be read: ' + e.message, true);
	}
}

start(() => {
	header('alerts');
	readUrl();
	for (const k of FILTERS)
		$('#f-' + k).addEventListener('change', () => {
			state[k] = $('#f-' + k).value;
			state.offset = 0;
			load();
		});
	$('#f-clear').addEventListener('click', () => {
		for (const k of FILTERS) {
			state[k] = '';
			$('#f-' + k).value = '';
		}
		state.offset = 0;
		load();
	});
	$('#prev').addEventListener('click', () => {
		state.offset = Math.max(0, state.offset - LIMIT);
		load();
	});
	$('#next').addEventListener('click', () => {
		state.offset += LIMIT;
		load();
	});
	if (canOperate()) {
		$('#silence-form').hidden = false;
		$('#silence-form').addEventListener('submit', addSilence);
		$('#s-scope').addEventListener('change', () => {
			$('#s-station').hidden = $('#s-scope').value !== 'station';
		});
	}
	load();
	loadSites();
	loadSilences();
	loadRules();
	const again = debounce(() => {
		load();
		loadSilences();
	}, 1000);
	live({ alert: again, resync: again });
	setInterval(again, 60000);
});
