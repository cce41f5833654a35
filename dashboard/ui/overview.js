// Overview: the fleet at a glance, from GET /api/v1/summary and /api/v1/agents, kept current by
// the live stream (and a minute timer: a phone turns stale by the clock, without any message).
import {
	api, header, live, el, fill, $, debounce, pct, shareBar, badge, fmtAgo, fmtTime, notice, start
} from './common.js';

const charts = {};

function setNum(key, value) {
	const n = document.querySelector('[data-k="' + key + '"]');
	if (n)
		n.textContent = value === null || value === undefined ? '–' : String(value);
}

function linkDevices(params, text) {
	return el('a', { href: '/devices?' + new URLSearchParams(params) }, text);
}

function renderCards(s) {
	const by = s.by_status || {};
	setNum('total', s.total);
	for (const k of ['ok', 'stale', 'unknown', 'missing']) {
		setNum(k, by[k] ?? 0);
		const sub = document.querySelector('[data-s="' + k + '"]');
		if (sub)
			sub.textContent = s.total ? pct((by[k] || 0) / s.total) + ' of all' : '\u00a0';
	}
	const ag = s.agents || {};
	const on = ag.online ?? 0, off = ag.offline ?? 0;
	setNum('agents', on + ' / ' + (on + off));
	const sub = $('#sub-agents');
	sub.textContent = off ? off + ' offline' : 'all online';
	sub.className = off ? 'sub err-text' : 'sub';
}

function renderShares(s) {
	const sites = s.by_site || [];
	fill($('#by-site tbody'), sites.length ? sites.map((r) => el('tr', {},
		el('td', {}, linkDevices({ site: r.site }, r.site || '(none)')),
		el('td', { class: 'num' }, r.total), el('td', { class: 'num' }, r.ok),
		el('td', { class: 'num' }, pct(r.share_ok)), el('td', {}, shareBar(r.share_ok)))) :
		el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No phones yet.')));
	const st = s.by_station || [];
	fill($('#by-station tbody'), st.length ? st.map((r) => el('tr', {},
		el('td', {}, r.site || '—'),
		el('td', {}, linkDevices({ agent: r.agent }, r.station || '(none)')),
		el('td', { class: 'mono' }, r.agent || '—'),
		el('td', { class: 'num' }, r.total), el('td', { class: 'num' }, r.ok),
		el('td', { class: 'num' }, pct(r.share_ok)), el('td', {}, shareBar(r.share_ok)))) :
		el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No phones yet.')));
}

function renderCauses(s) {
	const top = s.top_causes || [];
	fill($('#top-causes'), top.length ? top.map((c) => el('li', {},
		linkDevices({ cause: c.code }, el('span', { class: 'chip' }, c.code)),
		el('strong', {}, c.count))) :
		el('li', { class: 'muted' }, 'No causes reported.'));
}

// Bucket colours from green (recent) to red (old).
function ageColors(n) {
	const out = [];
	for (let i = 0; i < n; i++) {
		const t = n > 1 ? i / (n - 1) : 0;
		const hue = Math.round(130 - 130 * t);
		out.push('hsl(' + hue + ', 55%, 45%)');
	}
	return out;
}

// Axis labels: hours and minutes within a day, else the date.
function timeLabels(points) {
	const p = (x) => String(x).padStart(2, '0');
	const ts = points.map((x) => new Date(x.ts));
	const span = ts.length ? ts[ts.length - 1] - ts[0] : 0;
	return ts.map((d) => span <= 86400000 ? p(d.getHours()) + ':' + p(d.getMinutes()) :
		p(d.getMonth() + 1) + '-' + p(d.getDate()));
}

function chart(id, config) {
	if (!window.Chart)
		return;
	if (charts[id]) {
		charts[id].data = config.data;
		charts[id].update('none');
		return;
	}
	charts[id] = new window.Chart(document.getElementById(id), config);
}

const baseOptions = {
	responsive: true,
	maintainAspectRatio: false,
	animation: false,
	plugins: { legend: { display: false } },
	scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
};

function renderCharts(s) {
	const h = s.age_histogram || [];
	chart('age-chart', {
		type: 'bar',
		data: {
			labels: h.map((b) => b.label),
			datasets: [{ label: 'phones', data: h.map((b) => b.count),
				backgroundColor: ageColors(h.length) }],
		},
		options: baseOptions,
	});
	// The samples, then the numbers of now, so the line always ends at the present.
	const t = (s.stale_over_time || []).concat([{ ts: new Date().toISOString(), total: s.total,
		stale: (s.by_status || {}).stale || 0 }]);
	$('#stale-note').textContent = t.length < 2 ?
		'Only the present so far: a sample is taken every 5 minutes.' :
		'Since ' + fmtTime(t[0].ts) + ', one sample every 5 minutes.';
	chart('stale-chart', {
		type: 'line',
		data: {
			labels: timeLabels(t),
			datasets: [
				{ label: 'stale', data: t.map((p) => p.stale), borderColor: '#cf222e',
					backgroundColor: 'rgba(207,34,46,0.12)', fill: true,
					pointRadius: t.length > 30 ? 0 : 3,
					tension: 0.2 },
				{ label: 'phones', data: t.map((p) => p.total), borderColor: '#8c959f',
					borderDash: [4, 4], pointRadius: 0, fill: false },
			],
		},
		options: Object.assign({}, baseOptions, {
			plugins: { legend: { display: true, position: 'bottom',
				labels: { boxWidth: 12 } } },
			scales: { y: { beginAtZero: true, ticks: { precision: 0 } },
				x: { ticks: { maxTicksLimit: 8, maxRotation: 0, autoSkipPadding: 20 } } },
		}),
	});
}

function renderIngest(s) {
	const i = s.ingest;
	if (!i)
		return;
	$('#ingest').textContent = 'Ingest: ' + i.messages + ' messages, ' + i.malformed +
		' malformed, ' + i.duplicates + ' duplicates, ' + i.lost + ' lost.';
}

async function loadSummary() {
	const s = await api('/api/v1/summary');
	renderCards(s);
	renderShares(s);
	renderCauses(s);
	renderCharts(s);
	renderIngest(s);
}

const agentRows = new Map();

function agentRow(a) {
	return el('tr', { 'data-agent': a.agent },
		el('td', { class: 'mono' }, linkDevices({ agent: a.agent }, a.agent)),
		el('td', {}, a.site || '—'), el('td', {}, a.station || '—'),
		el('td', {}, badge(a.presence || (a.online ? 'online' : 'offline'))),
		el('td', { class: 'num' }, a.phones_attached ?? '—'),
		el('td', { title: a.last_seen || '' }, a.online ? 'now' : fmtAgo(a.last_seen)),
		el('td', { class: 'muted' }, a.version || '—'),
		el('td', { class: 'num' + (a.lost_messages ? ' err-text' : '') }, a.lost_messages ?? 0));
}

async function loadAgents() {
	const res = await api('/api/v1/agents');
	const list = Array.isArray(res) ? res : res.agents || [];
	agentRows.clear();
	const tbody = $('#agents tbody');
	if (!list.length) {
		fill(tbody, el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'No agent has reported yet.')));
		return;
	}
	fill(tbody, list.map((a) => {
		const tr = agentRow(a);
		agentRows.set(a.agent, tr);
		return tr;
	}));
}

function onAgent(a) {
	const old = agentRows.get(a.agent);
	if (!old) {
		reloadAgents();
		return;
	}
	const tr = agentRow(a);
	tr.classList.add('flash');
	old.replaceWith(tr);
	agentRows.set(a.agent, tr);
}

function report(e) {
	notice('Could not load the overview: ' + e.message, true);
}

async function loadAll() {
	try {
		await Promise.all([loadSummary(), loadAgents()]);
		notice(null);
	} catch (e) {
		report(e);
	}
}

const reloadSummary = debounce(() => loadSummary().catch(report), 1000);
const reloadAgents = debounce(() => loadAgents().catch(report), 1000);

header('overview');
start(() => {
	loadAll();
	live({ summary: reloadSummary, agent: onAgent, resync: loadAll });
	setInterval(loadAll, 60000);
});
