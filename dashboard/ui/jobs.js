// Jobs page (/jobs): the bulk jobs (GET /api/v1/jobs) with state, progress, rate and ETA, live
// through the stream's "job" events; one job's executions (/jobs?id=N); and, for operators and
// admins, a new job: its target carried over from the device table's filter (/jobs?new=1&site=...,
// the devices page's "Create job from this filter"), or pasted UDIDs / serial numbers, then a dry
// run whose numbers (phones, docked, stations) are shown before the job can be started.
import {
	api, header, live, el, fill, $, debounce, fmtAge, fmtAgo, timeEl, badge, notice, start,
	canOperate, deviceHref
} from './common.js';

// The device table's filters (devices.js FILTERS), as the jobs API takes them in target.filter.
const FILTERS = ['q', 'site', 'agent', 'status', 'cause', 'ios_below'];
const EXEC_STATES = ['queued', 'sent', 'accepted', 'in_progress', 'waiting_for_user', 'succeeded',
	'failed', 'timed_out', 'rejected', 'canceled'];
const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'rejected', 'canceled']);
const FAILED = new Set(['failed', 'timed_out', 'rejected']);
const JOB_FINAL = new Set(['completed', 'aborted', 'canceled']);

const params = new URLSearchParams(location.search);
const detailId = parseInt(params.get('id'), 10) || null;
const filter = {};
for (const k of FILTERS)
	if (params.get(k))
		filter[k] = params.get(k);

const jobs = new Map(); // id -> job object
let dryFor = null; // the body (JSON text) the shown dry run was made for

// ---- the list ----

function done(j) {
	let n = 0;
	for (const s of FINAL)
		n += (j.counts || {})[s] || 0;
	return n;
}

function progress(j) {
	const total = j.total || 0, n = done(j);
	const share = total ? n / total : 0;
	const bar = el('div', { class: 'bar job-bar', title: n + ' of ' + total + ' finished' },
		el('span'));
	bar.firstChild.style.width = (share * 100).toFixed(1) + '%';
	return el('div', { class: 'job-progress' }, bar,
		el('span', { class: 'muted' }, n + ' / ' + total));
}

function countsText(j) {
	const c = j.counts || {};
	const parts = [];
	const running = (c.sent || 0) + (c.accepted || 0) + (c.in_progress || 0) +
		(c.waiting_for_user || 0);
	if (c.succeeded)
		parts.push(el('span', { class: 'ok-text' }, c.succeeded + ' ok'));
	let bad = 0;
	for (const s of FAILED)
		bad += c[s] || 0;
	if (bad)
		parts.push(el('span', { class: 'err-text' }, bad + ' failed'));
	if (running)
		parts.push(running + ' running');
	if (c.queued)
		parts.push(el('span', { class: 'muted' }, c.queued + ' queued'));
	if (c.canceled)
		parts.push(el('span', { class: 'muted' }, c.canceled + ' canceled'));
	const out = [];
	parts.forEach((p, i) => out.push(i ? ' · ' : '', p));
	return out.length ? out : el('span', { class: 'muted' }, '—');
}

function eta(j) {
	if (JOB_FINAL.has(j.state))
		return '—';
	if (j.eta_s === null || j.eta_s === undefined)
		return el('span', { class: 'muted', title: 'no execution finished in the last minutes' },
			'?');
	return fmtAge(j.eta_s);
}

function cancelButton(j) {
	if (!canOperate() || JOB_FINAL.has(j.state))
		return null;
	return el('button', { type: 'button', class: 'cancel', 'data-job': j.id,
		onclick: (ev) => {
			ev.stopPropagation();
			cancel(j);
		} }, 'Cancel');
}

function jobRow(j) {
	return el('tr', { 'data-job': j.id, class: j.id === detailId ? 'selected' : null },
		el('td', { class: 'num' }, String(j.id)),
		el('td', {}, el('a', { href: '/jobs?id=' + j.id }, j.name)),
		el('td', { class: 'mono' }, (j.command || {}).name || '—'),
		el('td', {}, badge(j.state, 'job-' + j.state)),
		el('td', {}, progress(j)),
		el('td', { class: 'counts' }, countsText(j)),
		el('td', { class: 'num' }, j.rate_per_minute ? j.rate_per_minute + '/min' : '—'),
		el('td', { class: 'num eta' }, eta(j)),
		el('td', { title: j.created_at || '' }, fmtAgo(j.created_at), ' by ', j.created_by || '?'),
		el('td', {}, cancelButton(j)));
}

function renderList() {
	const list = [...jobs.values()].sort((a, b) => b.id - a.id);
	const tbody = $('#jobs tbody');
	if (!list.length) {
		fill(tbody, el('tr', {}, el('td', { colspan: 10, class: 'muted' },
			'No jobs yet.' + (canOperate() ? ' Start one from the device table\'s filter.' : ''))));
		return;
	}
	fill(tbody, list.map(jobRow));
}

async function loadList() {
	try {
		const res = await api('/api/v1/jobs?limit=100');
		jobs.clear();
		for (const j of res.jobs || [])
			jobs.set(j.id, j);
		renderList();
		notice(null);
	} catch (e) {
		notice(e.status === 403 ? 'Jobs are for operators and admins.' :
			'Could not load the jobs: ' + e.message, true);
	}
}

// One job changed (a stream event or a poll): its row in place, the detail if it is shown.
function onJob(j) {
	if (!j || j.id === undefined)
		return;
	// how many job events this page got live (the browser test reads it)
	document.body.dataset.jobEvents = String((+document.body.dataset.jobEvents || 0) + 1);
	jobs.set(j.id, j);
	const old = document.querySelector('#jobs tr[data-job="' + j.id + '"]');
	const tr = jobRow(j);
	if (old) {
		tr.classList.add('flash');
		old.replaceWith(tr);
	} else {
		renderList();
	}
	if (j.id === detailId) {
		renderDetail(j);
		reloadExecutions();
	}
}

async function cancel(j) {
	if (!window.confirm('Cancel job #' + j.id + ' "' + j.name + '"? Executions not yet sent ' +
		'are canceled; those running finish.'))
		return;
	try {
		const res = await api('/api/v1/jobs/' + j.id + '/cancel', { method: 'POST' });
		notice(null);
		onJob(res && res.id !== undefined ? res : await api('/api/v1/jobs/' + j.id));
	} catch (e) {
		notice('Job #' + j.id + ' was not canceled: ' + e.message, true);
	}
}

// ---- one job ----

function fact(label, value) {
	return [el('dt', {}, label), el('dd', {}, value)];
}

function targetText(t) {
	if (!t)
		return '—';
	if (t.filter) {
		const keys = Object.keys(t.filter);
		return keys.length ? keys.map((k) => k + ' = ' + t.filter[k]).join(', ') :
			'every phone';
	}
	if (t.udids)
		return t.udids.length + ' UDIDs';
	if (t.serials)
		return t.serials.length + ' serial numbers';
	return JSON.stringify(t);
}

function renderDetail(j) {
	$('#detail').hidden = false;
	fill($('#d-title'), 'Job #' + j.id + ': ' + j.name);
	fill($('#d-state'), badge(j.state, 'job-' + j.state));
	const c = $('#d-cancel');
	c.hidden = !canOperate() || JOB_FINAL.has(j.state);
	c.onclick = () => cancel(j);
	fill($('#d-progress'), progress(j), el('div', { class: 'counts' }, countsText(j)));
	const cmd = j.command || {};
	const p = cmd.params && Object.keys(cmd.params).length ? ' ' + JSON.stringify(cmd.params) : '';
	const r = j.rollout || {}, a = j.abort || {};
	fill($('#d-facts'),
		fact('Command', cmd.name + p),
		fact('Target', targetText(j.target) + (j.continuous ? ' (continuous)' : '')),
		fact('Rollout', (r.per_minute ? r.per_minute + ' per minute' : 'no rate limit') + ', ' +
			(r.per_agent ? r.per_agent + ' at once per station' : 'no limit per station')),
		fact('Abort', a.failure_pct ? a.failure_pct + ' % failed after ' +
			(a.min_executions || 0) + ' executions' : 'never'),
		fact('Timeout', (j.timeout_s || '—') + ' s per phone'),
		fact('Deadline', timeEl(j.deadline)),
		fact('Rate', j.rate_per_minute ? j.rate_per_minute + ' per minute' : '—'),
		fact('ETA', eta(j)),
		fact('Created', [timeEl(j.created_at, true), ' by ', j.created_by || '?']),
		fact('Started', timeEl(j.started_at, true)),
		fact('Finished', timeEl(j.finished_at, true)),
		j.canceled_by ? fact('Canceled by', j.canceled_by) : null,
		j.detail ? fact('Detail', j.detail) : null);
}

function execRow(e) {
	const why = [e.cause, e.detail].filter(Boolean).join(': ');
	return el('tr', { 'data-udid': e.udid },
		el('td', {}, el('a', { href: deviceHref(e.udid), title: 'UDID ' + e.udid },
			e.name || e.udid)),
		el('td', { class: 'mono' }, e.serial || '—'),
		el('td', {}, e.agent || '—'),
		el('td', {}, badge(e.state)),
		el('td', { class: 'num' }, String(e.attempt ?? '—')),
		el('td', { class: 'wrap' }, why || el('span', { class: 'muted' }, '—')),
		el('td', { title: e.updated_at || '' }, fmtAgo(e.updated_at)));
}

async function loadExecutions() {
	const st = $('#e-state').value;
	const res = await api('/api/v1/jobs/' + detailId + '/executions?limit=200' +
		(st ? '&state=' + encodeURIComponent(st) : ''));
	const list = res.executions || [];
	fill($('#executions tbody'), list.length ? list.map(execRow) :
		el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No executions in this state.')));
	$('#e-count').textContent = list.length < (res.total || 0) ?
		'first ' + list.length + ' of ' + res.total : (res.total || 0) + ' executions';
}

const reloadExecutions = debounce(() => loadExecutions().catch(() => {}), 1000);

async function loadDetail() {
	try {
		const j = await api('/api/v1/jobs/' + detailId);
		jobs.set(j.id, j);
		renderDetail(j);
		await loadExecutions();
	} catch (e) {
		notice(e.status === 404 ? 'No job #' + detailId + '.' :
			'Could not load job #' + detailId + ': ' + e.message, true);
	}
}

// ---- a new job ----

// A name from the command and the filter, kept in step with them until the user types one.
let autoNamed = '';

function autoName() {
	if ($('#j-name').value && $('#j-name').value !== autoNamed)
		return;
	const what = filter.cause || filter.status || 'phones';
	const where = filter.site || filter.agent || 'all sites';
	autoNamed = $('#j-command').value + ': ' + what + ' at ' + where;
	$('#j-name').value = autoNamed;
}

function kind() {
	return document.querySelector('input[name="kind"]:checked').value;
}

function ids() {
	return $('#t-ids').value.split(/[\s,;]+/).map((s) => s.replace(/^"|"$/g, '').trim())
		.filter((s) => s && !/^(udid|serial|serial_number)$/i.test(s));
}

function body(dryRun) {
	const k = kind();
	const target = k === 'filter' ? { filter } : { [k]: ids() };
	const command = $('#j-command').value;
	const cmdParams = {};
	if (command === 'backup.local.start' && $('#p-full').checked)
		cmdParams.full = true;
	const b = {
		name: $('#j-name').value.trim(),
		command: { name: command, params: cmdParams },
		target,
		rollout: { per_minute: +$('#j-per-minute').value || 0,
			per_agent: +$('#j-per-agent').value || 0 },
		timeout_s: +$('#j-timeout').value || 600,
		continuous: $('#j-continuous').checked,
	};
	const pctV = +$('#j-abort-pct').value || 0;
	if (pctV > 0)
		b.abort = { failure_pct: pctV, min_executions: +$('#j-abort-min').value || 0 };
	if ($('#j-deadline').value) {
		const d = new Date($('#j-deadline').value);
		if (!isNaN(d))
			b.deadline = d.toISOString().replace(/\.\d{3}Z$/, 'Z');
	}
	if (dryRun)
		b.dry_run = true;
	return b;
}

// Any change to the form makes the shown dry run stale: it must be made again before starting.
function invalidate() {
	if (dryFor === null)
		return;
	dryFor = null;
	$('#confirm').disabled = true;
	fill($('#dry'), el('span', { class: 'muted' }, 'The job changed: make the dry run again.'));
}

function renderDry(d) {
	const agents = d.agents || [];
	const rows = agents.slice(0, 20).map((a) => el('tr', {},
		el('td', {}, a.agent || el('span', { class: 'muted' }, '(never seen)')),
		el('td', { class: 'num' }, String(a.phones)), el('td', { class: 'num' }, String(a.docked))));
	const unresolved = d.unresolved || [];
	fill($('#dry'),
		el('p', { class: 'dry-numbers' },
			el('strong', { id: 'dry-phones' }, String(d.total)), d.total === 1 ? ' phone' : ' phones',
			' on ', el('strong', { id: 'dry-agents' }, String(agents.length)),
			agents.length === 1 ? ' station' : ' stations', ' (',
			el('span', { id: 'dry-docked' }, String(d.docked)), ' docked now; ',
			String(d.not_docked), ' get it when they next dock, until the deadline).'),
		unresolved.length ? el('p', { class: 'err-text' }, unresolved.length +
			' not known to the dashboard: ' + unresolved.slice(0, 10).join(', ') +
			(unresolved.length > 10 ? ', …' : '')) : null,
		agents.length ? el('div', { class: 'table-wrap' }, el('table', { class: 'dry-agents' },
			el('thead', {}, el('tr', {}, el('th', {}, 'Station (agent)'),
				el('th', { class: 'num' }, 'Phones'), el('th', { class: 'num' }, 'Docked'))),
			el('tbody', {}, rows,
				agents.length > 20 ? el('tr', {}, el('td', { colspan: 3, class: 'muted' },
					'… and ' + (agents.length - 20) + ' more stations')) : null))) : null);
}

async function dryRun(ev) {
	ev.preventDefault();
	const b = body(true);
	if (!b.name) {
		notice('Give the job a name.', true);
		return;
	}
	try {
		const d = await api('/api/v1/jobs', { method: 'POST', body: b });
		notice(null);
		renderDry(d);
		dryFor = JSON.stringify(body(false));
		$('#confirm').disabled = !d.total;
		if (!d.total)
			$('#dry').append(el('p', { class: 'err-text' }, 'No phone matches: nothing to start.'));
	} catch (e) {
		dryFor = null;
		$('#confirm').disabled = true;
		fill($('#dry'), el('p', { class: 'err-text' }, 'Dry run refused: ' + e.message));
	}
}

async function confirmJob() {
	const b = body(false);
	if (dryFor === null || JSON.stringify(b) !== dryFor) {
		invalidate();
		return;
	}
	$('#confirm').disabled = true;
	try {
		const j = await api('/api/v1/jobs', { method: 'POST', body: b });
		// the job's own page: progress arrives live
		location.assign('/jobs?id=' + j.id);
	} catch (e) {
		$('#confirm').disabled = false;
		fill($('#dry'), el('p', { class: 'err-text' }, 'The job was not created: ' + e.message));
	}
}

function syncKind() {
	const k = kind();
	$('#t-filter').hidden = k !== 'filter';
	$('#t-list').hidden = k === 'filter';
	invalidate();
}

function openCreate() {
	$('#create').hidden = false;
	$('#new-job').hidden = true;
	const keys = Object.keys(filter);
	fill($('#filter-chips'), keys.length ?
		keys.map((k) => el('span', { class: 'chip', 'data-key': k }, k + ' = ' + filter[k])) :
		el('span', { class: 'chip' }, 'every phone'));
	const back = new URLSearchParams(filter).toString();
	$('#filter-edit').href = '/devices' + (back ? '?' + back : '');
	if (!$('#j-name').value)
		autoName();
	$('#j-name').focus();
}

function wireCreate() {
	const form = $('#job-form');
	form.addEventListener('submit', dryRun);
	form.addEventListener('input', invalidate);
	form.addEventListener('change', invalidate);
	for (const r of document.querySelectorAll('input[name="kind"]'))
		r.addEventListener('change', syncKind);
	$('#j-command').addEventListener('change', () => {
		$('#p-full-wrap').hidden = $('#j-command').value !== 'backup.local.start';
		autoName();
	});
	$('#t-csv').addEventListener('change', async () => {
		const f = $('#t-csv').files[0];
		if (!f)
			return;
		const text = await f.text();
		// the first column of each line: a UDID or serial number
		$('#t-ids').value = text.split(/\r?\n/).map((l) => l.split(',')[0].trim())
			.filter(Boolean).join('\n');
		invalidate();
	});
	$('#confirm').addEventListener('click', confirmJob);
	$('#create-cancel').addEventListener('click', () => {
		$('#create').hidden = true;
		$('#new-job').hidden = !canOperate();
	});
	$('#new-job').addEventListener('click', openCreate);
	$('#e-state').append(...EXEC_STATES.map((s) => el('option', { value: s }, s)));
	$('#e-state').addEventListener('change', () => loadExecutions().catch(() => {}));
}

header('jobs');
wireCreate();
start(() => {
	if (canOperate()) {
		$('#new-job').hidden = false;
		if (params.get('new'))
			openCreate();
	} else if (params.get('new')) {
		notice('Only operators and admins can create jobs.', true);
	}
	loadList();
	if (detailId)
		loadDetail();
	live({
		job: onJob,
		resync: () => {
			loadList();
			if (detailId)
				loadDetail();
		},
	});
	// The stream carries every change; a slow poll covers a stream that is down, and keeps the
	// rate and ETA (which change with time alone) fresh.
	setInterval(() => {
		loadList();
		if (detailId)
			loadDetail();
	}, 15000);
});
