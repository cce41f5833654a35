// Device page (/devices/{udid}): the phone's facts, each cause with its evidence, remediation and
// complexity, its commands (buttons for operators; results stream in live), and its history.
import {
	api, header, live, el, fill, $, debounce, fmtAge, fmtAgo, timeEl, badge, notice, whoami,
	canOperate, start
} from './common.js';

const udid = decodeURIComponent(location.pathname.replace(/^\/devices\//, ''));
const enc = encodeURIComponent(udid);
const HISTORY_PAGE = 50;

// The single-phone commands of proto/COMMANDS.md, in button order.
const COMMANDS = [
	['device.refresh', 'Refresh now', null],
	['backup.icloud.enable', 'Switch iCloud Backup on', null],
	['backup.local.start', 'Start local backup', null],
	['device.restart', 'Restart phone', 'Restart this phone now? Whoever uses it loses what is open.'],
];
const FINAL = new Set(['succeeded', 'failed', 'rejected', 'timed_out', 'canceled']);

let device = null;
const commands = new Map(); // cmd_id -> command object
let historyOffset = 0;

function yesNo(v) {
	if (v === true)
		return 'yes';
	if (v === false)
		return el('span', { class: 'err-text' }, 'no');
	return el('span', { class: 'muted' }, 'unknown');
}

function fact(label, value) {
	return [el('dt', {}, label), el('dd', {}, value ?? '—')];
}

function renderDevice(d) {
	device = d;
	document.title = (d.name || d.udid) + ' · cradle';
	$('#d-name').textContent = d.name || '(no name)';
	fill($('#d-status'), badge(d.status));
	const place = (d.site || '?') + ' / ' + (d.station || '?');
	const where = d.attached ? 'docked at ' + place :
		'not docked; last seen at ' + place + ' ' + fmtAgo(d.last_seen);
	$('#d-where').textContent = where;
	const age = d.last_icloud ? fmtAge(d.age_s) + ' ago' : 'never';
	fill($('#facts'),
		fact('Last iCloud backup', el('span', {}, timeEl(d.last_icloud), ' ',
			el('span', { class: d.status === 'stale' ? 'err-text' : 'muted' }, '(' + age + ')'))),
		fact('iCloud Backup on', yesNo(d.icloud_enabled)),
		fact('Last local backup', timeEl(d.last_local)),
		fact('Serial', el('span', { class: 'mono' }, d.serial || '—')),
		fact('UDID', el('span', { class: 'mono' }, d.udid)),
		fact('Model', d.product_type),
		fact('iOS', d.ios_version),
		fact('Site / station', (d.site || '—') + ' / ' + (d.station || '—')),
		fact('Agent', el('span', {}, el('span', { class: 'mono' }, d.agent || '—'), ' ',
			el('span', { id: 'agent-presence' }))),
		fact('Agent\'s verdict', d.agent_status ? badge(d.agent_status) : null),
		fact('Docked now', yesNo(d.attached)),
		fact('Last seen', timeEl(d.last_seen)),
		fact('Probe', d.probe));
	renderCauses(d);
	renderActions(d);
}

function renderCauses(d) {
	const details = d.cause_details || (d.causes || []).map((code) => ({ code }));
	if (!details.length) {
		fill($('#causes'), el('p', { class: 'muted' },
			d.status === 'ok' ? 'Backed up within the threshold; no warning.' : 'No cause reported.'));
		return;
	}
	fill($('#causes'), details.map((c) => el('div', { class: 'cause', 'data-cause': c.code },
		el('div', { class: 'head' }, el('span', { class: 'chip' }, c.code),
			c.complexity ? el('span', {}, 'fix: ', badge(c.complexity)) : null),
		el('p', {}, el('span', { class: 'k' }, 'Evidence'), c.evidence || '—'),
		el('p', {}, el('span', { class: 'k' }, 'Remediation'), c.remediation || '—'))));
}

function renderActions(d) {
	const box = $('#actions');
	if (!canOperate()) {
		fill(box, el('span', { class: 'muted' }, 'Viewers cannot send commands.'));
		return;
	}
	const allowed = Array.isArray(d.commands_allowed) ? new Set(d.commands_allowed) : null;
	const docked = d.attached;
	fill(box, COMMANDS.map(([name, label, confirmText]) => {
		let why = null;
		if (allowed && !allowed.has(name))
			why = 'the agent does not allow ' + name;
		else if (!docked)
			why = 'the phone is not docked at a station that is online';
		return el('button', {
			type: 'button', class: name === 'device.refresh' ? 'primary' : null,
			'data-cmd': name, disabled: !!why, title: why || name,
			onclick: () => send(name, confirmText),
		}, label);
	}));
}

async function send(name, confirmText) {
	if (confirmText && !window.confirm(confirmText))
		return;
	try {
		const res = await api('/api/v1/devices/' + enc + '/commands',
			{ method: 'POST', body: { name, params: {} } });
		notice(null);
		if (!commands.has(res.cmd_id)) {
			const me = await whoami();
			commands.set(res.cmd_id, { cmd_id: res.cmd_id, udid, name, status: 'sent',
				results: [], sent_by: me.user, sent_at: new Date().toISOString(),
				agent: device ? device.agent : null });
		}
		renderCommands();
	} catch (e) {
		notice(name + ' was not sent: ' + e.message, true);
	}
}

// What the latest result says beyond its status: progress, failure cause, detail.
function progressText(c) {
	const r = c.results && c.results.length ? c.results[c.results.length - 1] : null;
	if (!r)
		return '';
	const parts = [];
	if (typeof r.progress === 'number' && !FINAL.has(r.status))
		parts.push(r.progress + ' %');
	if (r.cause)
		parts.push(r.cause);
	if (r.reason)
		parts.push(r.reason);
	if (r.detail)
		parts.push(r.detail);
	return parts.join(' · ');
}

function commandRow(c) {
	const trail = (c.results || []).map((r) => r.status).join(' → ');
	return el('tr', { 'data-cmd-id': c.cmd_id },
		el('td', {}, timeEl(c.sent_at, true)),
		el('td', { class: 'mono' }, c.name),
		el('td', {}, c.sent_by || '—'),
		el('td', { class: 'mono' }, c.agent || '—'),
		el('td', { title: trail }, badge(c.status)),
		el('td', { class: 'wrap' }, progressText(c)));
}

function renderCommands() {
	const list = [...commands.values()].sort((a, b) =>
		String(b.sent_at).localeCompare(String(a.sent_at)));
	const tbody = $('#commands tbody');
	if (!list.length) {
		fill(tbody, el('tr', {}, el('td', { colspan: 6, class: 'muted' },
			'No command sent to this phone yet.')));
		return;
	}
	fill(tbody, list.map(commandRow));
}

function historyRow(h) {
	return el('tr', {},
		el('td', { class: 'ts' }, timeEl(h.ts, true)),
		el('td', {}, badge(h.kind, 'kind-' + h.kind)),
		el('td', { class: 'mono' }, h.name || ''),
		el('td', { class: 'wrap', title: h.detail ? JSON.stringify(h.detail) : null },
			h.summary || ''),
		el('td', { class: 'mono' }, h.agent || ''));
}

async function loadHistory(reset) {
	if (reset)
		historyOffset = 0;
	const res = await api('/api/v1/devices/' + enc + '/history?limit=' + HISTORY_PAGE +
		'&offset=' + historyOffset);
	const list = res.history || [];
	const tbody = $('#history tbody');
	if (reset)
		tbody.replaceChildren();
	tbody.append(...list.map(historyRow));
	historyOffset += list.length;
	if (!historyOffset)
		tbody.append(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No history yet.')));
	$('#more').disabled = historyOffset >= (res.total ?? 0);
	$('#h-count').textContent = historyOffset + ' of ' + (res.total ?? historyOffset);
}

async function loadDevice() {
	const d = await api('/api/v1/devices/' + enc);
	renderDevice(d);
	if (d.agent)
		loadPresence(d.agent).catch(() => {});
}

// The presence of the phone's agent: an offline station explains a phone that is not docked.
async function loadPresence(agent) {
	const a = await api('/api/v1/agents/' + encodeURIComponent(agent));
	const box = document.getElementById('agent-presence');
	if (box && device && device.agent === a.agent)
		fill(box, badge(a.presence || (a.online ? 'online' : 'offline')));
}

async function loadCommands() {
	const res = await api('/api/v1/devices/' + enc + '/commands');
	for (const c of res.commands || [])
		commands.set(c.cmd_id, c);
	renderCommands();
}

// The bulk jobs that touched this phone (GET /api/v1/jobs?udid=), with its execution's state.
// Jobs are for operators and admins: viewers do not see the panel.
async function loadJobs() {
	if (!canOperate())
		return;
	const res = await api('/api/v1/jobs?limit=20&udid=' + enc);
	const list = res.jobs || [];
	$('#jobs-panel').hidden = false;
	fill($('#jobs tbody'), list.length ? list.map((j) => el('tr', { 'data-job': j.id },
		el('td', {}, el('a', { href: '/jobs?id=' + j.id }, '#' + j.id + ' ' + j.name)),
		el('td', { class: 'mono' }, (j.command || {}).name || '—'),
		el('td', {}, badge(j.state, 'job-' + j.state)),
		el('td', {}, badge(j.execution_state || '—')),
		el('td', {}, timeEl(j.created_at), ' by ', j.created_by || '?'))) :
		el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No job has touched this phone.')));
}

function report(e) {
	if (e.status === 404)
		notice('No phone with UDID ' + udid + ' is known to the dashboard.', true);
	else
		notice('Could not load this phone: ' + e.message, true);
}

async function loadAll() {
	try {
		await loadDevice();
		await Promise.all([loadHistory(true), loadCommands(), loadJobs()]);
	} catch (e) {
		report(e);
	}
}

const reloadDevice = debounce(() => loadDevice().catch(report), 500);
const reloadHistory = debounce(() => loadHistory(true).catch(report), 1500);
const reloadJobs = debounce(() => loadJobs().catch(() => {}), 1500);

function onCommand(c) {
	if (c.udid !== udid)
		return;
	commands.set(c.cmd_id, c);
	renderCommands();
	const tr = document.querySelector('tr[data-cmd-id="' + CSS.escape(c.cmd_id) + '"]');
	if (tr)
		tr.classList.add('flash');
	reloadHistory();
}

header('devices');
$('#more').addEventListener('click', () => loadHistory(false).catch(report));
start(() => {
	loadAll();
	live({
		device: (d) => {
			if (d.udid === udid) {
				reloadDevice();
				reloadHistory();
			}
		},
		command: (c) => {
			onCommand(c);
			if (c.udid === udid) // may be a job's execution
				reloadJobs();
		},
		agent: (a) => {
			if (device && a.agent === device.agent) {
				const box = document.getElementById('agent-presence');
				if (box)
					fill(box, badge(a.presence || (a.online ? 'online' : 'offline')));
				reloadDevice(); // its phones' docked state follows the agent's presence
			}
		},
		resync: loadAll,
	});
	setInterval(() => loadDevice().catch(report), 60000);
});
