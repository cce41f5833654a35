// Device table: GET /api/v1/devices with the filters in the page's own query string (so a filtered
// view is a link you can send), paging, sorting, the CSV export of the same filter, and rows
// that change in place as the live stream reports phones.
import {
	api, header, live, el, fill, $, debounce, fmtAge, fmtAgo, timeEl, badge, notice, start,
	deviceHref, CAUSES, canOperate
} from './common.js';

const FILTERS = ['q', 'site', 'agent', 'status', 'cause', 'ios_below'];
const state = { sort: '-age', limit: 50, offset: 0 };
const rows = new Map(); // udid -> <tr> on this page

function readUrl() {
	const p = new URLSearchParams(location.search);
	for (const k of FILTERS)
		state[k] = p.get(k) || '';
	state.sort = p.get('sort') || '-age';
	state.limit = parseInt(p.get('limit'), 10) || 50;
	state.offset = Math.max(0, parseInt(p.get('offset'), 10) || 0);
}

// The filter as query parameters; withPage adds sort, limit and offset.
function params(withPage) {
	const p = new URLSearchParams();
	for (const k of FILTERS)
		if (state[k])
			p.set(k, state[k]);
	p.set('sort', state.sort);
	if (withPage) {
		p.set('limit', state.limit);
		p.set('offset', state.offset);
	}
	return p;
}

function writeUrl() {
	const p = params(false);
	if (state.sort === '-age')
		p.delete('sort'); // the default: keep the address short
	if (state.offset)
		p.set('offset', state.offset);
	if (state.limit !== 50)
		p.set('limit', state.limit);
	const qs = p.toString();
	history.replaceState(null, '', '/devices' + (qs ? '?' + qs : ''));
	const csv = params(false);
	csv.set('format', 'csv');
	$('#csv').href = '/api/v1/devices?' + csv;
	// the jobs page takes the same filter keys (target.filter of POST /api/v1/jobs)
	const job = new URLSearchParams(params(false));
	job.delete('sort');
	job.set('new', '1');
	$('#job-from-filter').href = '/jobs?' + job;
}

function ensureOption(sel, value, label) {
	if (!value)
		return;
	for (const o of sel.options)
		if (o.value === value)
			return;
	sel.append(el('option', { value }, label || value));
}

function syncForm() {
	$('#f-q').value = state.q;
	$('#f-ios').value = state.ios_below;
	ensureOption($('#f-site'), state.site);
	ensureOption($('#f-agent'), state.agent);
	ensureOption($('#f-cause'), state.cause);
	$('#f-site').value = state.site;
	$('#f-agent').value = state.agent;
	$('#f-status').value = state.status;
	$('#f-cause').value = state.cause;
	$('#f-limit').value = String(state.limit);
	for (const th of document.querySelectorAll('th[data-sort]')) {
		const key = th.dataset.sort;
		th.querySelector('.arrow')?.remove();
		if (state.sort === key || state.sort === '-' + key)
			th.append(el('span', { class: 'arrow' }, state.sort.startsWith('-') ? ' ▼' : ' ▲'));
	}
}

// Docked now: attached at its agent and that agent online (the API's rule).
function docked(d) {
	return d.attached ? el('span', {}, 'yes') : el('span', { class: 'muted' }, 'no');
}

function icloud(d) {
	if (d.icloud_enabled === true)
		return 'on';
	if (d.icloud_enabled === false)
		return el('span', { class: 'err-text' }, 'off');
	return el('span', { class: 'muted' }, '?');
}

function row(d) {
	const ageCls = 'num' + (d.status === 'stale' ? ' err-text' : '');
	return el('tr', { 'data-udid': d.udid },
		el('td', {}, badge(d.status)),
		el('td', { class: 'name' }, el('a', { href: deviceHref(d.udid),
			title: (d.name ? d.name + ' · ' : '') + 'UDID ' + d.udid },
			d.name || '(no name)')),
		el('td', { class: 'mono' }, d.serial || '—'),
		el('td', {}, (d.site || '—') + ' / ' + (d.station || '—')),
		el('td', {}, d.ios_version || '—'),
		el('td', { class: ageCls, title: d.last_icloud || 'no iCloud backup on record' },
			d.last_icloud ? fmtAge(d.age_s) : 'never'),
		el('td', { class: 'muted col-date' }, timeEl(d.last_icloud)),
		el('td', {}, icloud(d)),
		el('td', { class: 'wrap causes' }, (d.causes || []).map((c) =>
			el('span', { class: 'chip', title: 'cause' }, c))),
		el('td', { class: 'docked' }, docked(d)),
		el('td', { title: d.last_seen || '' }, d.attached ? 'now' : fmtAgo(d.last_seen)));
}

function render(res) {
	const list = res.devices || [];
	rows.clear();
	const tbody = $('#devices tbody');
	if (!list.length) {
		fill(tbody, el('tr', {}, el('td', { colspan: 11, class: 'muted' },
			'No phone matches this filter.')));
	} else {
		fill(tbody, list.map((d) => {
			const tr = row(d);
			rows.set(d.udid, tr);
			return tr;
		}));
	}
	const total = res.total ?? list.length;
	const first = list.length ? state.offset + 1 : 0;
	$('#range').textContent = first + '–' + (state.offset + list.length) + ' of ' + total;
	$('#count').textContent = total + (total === 1 ? ' phone' : ' phones');
	$('#prev').disabled = state.offset === 0;
	$('#next').disabled = state.offset + list.length >= total;
}

let loadSeq = 0;

async function load() {
	const mine = ++loadSeq;
	writeUrl();
	syncForm();
	try {
		const res = await api('/api/v1/devices?' + params(true));
		if (mine !== loadSeq)
			return; // a newer filter was asked for meanwhile
		render(res);
		notice(null);
	} catch (e) {
		if (mine === loadSeq)
			notice(e.status === 400 ? 'Filter refused: ' + e.message :
				'Could not load the devices: ' + e.message, true);
	}
}

async function loadOptions() {
	const res = await api('/api/v1/agents');
	const agents = Array.isArray(res) ? res : res.agents || [];
	const sites = [...new Set(agents.map((a) => a.site).filter(Boolean))].sort();
	for (const s of sites)
		ensureOption($('#f-site'), s);
	for (const a of agents)
		ensureOption($('#f-agent'), a.agent,
			(a.site ? a.site + ' / ' : '') + (a.station || a.agent) + ' (' + a.agent + ')');
	for (const c of CAUSES)
		ensureOption($('#f-cause'), c);
	syncForm();
}

function setFilter(k, v) {
	state[k] = v.trim();
	state.offset = 0;
	load();
}

function onDevice(d) {
	const old = rows.get(d.udid);
	if (old) {
		const tr = row(d);
		tr.classList.add('flash');
		old.replaceWith(tr);
		rows.set(d.udid, tr);
	}
	// New phones, or phones that left or entered the filter: refetch the page, once per burst.
	refetch();
}

const refetch = debounce(load, 3000);

function wire() {
	const searchLater = debounce(() => setFilter('q', $('#f-q').value), 300);
	$('#f-q').addEventListener('input', searchLater);
	$('#f-ios').addEventListener('change', () => setFilter('ios_below', $('#f-ios').value));
	for (const [id, k] of [['#f-site', 'site'], ['#f-agent', 'agent'], ['#f-status', 'status'],
		['#f-cause', 'cause']])
		$(id).addEventListener('change', () => setFilter(k, $(id).value));
	$('#f-limit').addEventListener('change', () => {
		state.limit = parseInt($('#f-limit').value, 10);
		state.offset = 0;
		load();
	});
	$('#filters').addEventListener('submit', (ev) => {
		ev.preventDefault();
		state.q = $('#f-q').value.trim();
		state.ios_below = $('#f-ios').value.trim();
		state.offset = 0;
		load();
	});
	$('#f-clear').addEventListener('click', () => {
		for (const k of FILTERS)
			state[k] = '';
		state.offset = 0;
		load();
	});
	$('#prev').addEventListener('click', () => {
		state.offset = Math.max(0, state.offset - state.limit);
		load();
	});
	$('#next').addEventListener('click', () => {
		state.offset += state.limit;
		load();
	});
	for (const th of document.querySelectorAll('th[data-sort]')) {
		th.addEventListener('click', () => {
			const key = th.dataset.sort;
			// Backup age starts oldest first (what needs attention); the others A to Z.
			if (state.sort === key)
				state.sort = '-' + key;
			else if (state.sort === '-' + key)
				state.sort = key;
			else
				state.sort = key === 'age' ? '-age' : key;
			state.offset = 0;
			load();
		});
	}
}

header('devices');
readUrl();
wire();
start(() => {
	$('#job-from-filter').hidden = !canOperate();
	loadOptions().catch(() => {});
	load();
	live({ device: onDevice, resync: load });
	setInterval(load, 60000);
});
