// Wall screen: the overview's numbers, large, for reading across a room. Nobody touches it: it
// follows the live stream, re-reads everything every 30 s (ages grow with the clock alone) and
// reloads itself every 6 hours so a new dashboard version reaches it.
import { api, live, el, fill, $, debounce, pct, shareBar, fmtAge, start } from './common.js';

const MAX_ROWS = 6; // share rows: sites, then stations worst first
const OLDEST = 6;

function shareRow(label, r) {
	return el('div', { class: 'k-row' }, el('span', { class: 'name', title: label }, label),
		shareBar(r.share_ok), el('span', { class: 'pct' }, pct(r.share_ok)));
}

// The stale phones that waited longest: who to walk to first.
function renderOldest(list) {
	fill($('#k-oldest'), list.length ? list.map((d) => el('div', { class: 'k-cause' },
		el('span', { class: 'name' }, (d.name || d.serial || d.udid) + ' · ' +
			(d.station || d.agent || '?')),
		el('span', { class: 'n' }, d.last_icloud ? fmtAge(d.age_s) : 'never'))) :
		el('div', { class: 'k-empty' }, 'Every phone is backed up.'));
}

function render(s, agents) {
	const by = s.by_status || {};
	for (const k of ['ok', 'stale', 'unknown', 'missing'])
		$('#k-' + k).textContent = by[k] ?? 0;
	$('#k-total').textContent = (s.total ?? 0) + ' phones';
	const on = s.agents ? s.agents.online ?? 0 : 0;
	const off = s.agents ? s.agents.offline ?? 0 : 0;
	$('#k-agents').textContent = on + '/' + (on + off);
	$('#k-agents-card').classList.toggle('alarm', off > 0);

	const rows = [];
	for (const r of s.by_site || [])
		rows.push(shareRow(r.site || '(no site)', r));
	// Stations worst first: the wall shows what needs a walk to the cart.
	const st = [...(s.by_station || [])].sort((a, b) => (a.share_ok ?? 0) - (b.share_ok ?? 0));
	if ((s.by_site || []).length > 1 || st.length > 1)
		for (const r of st)
			rows.push(shareRow((r.site ? r.site + ' / ' : '') + (r.station || r.agent), r));
	fill($('#k-stations'), rows.length ? rows.slice(0, MAX_ROWS) :
		el('div', { class: 'k-empty' }, 'No phones yet.'));

	const top = (s.top_causes || []).slice(0, 6);
	fill($('#k-causes'), top.length ? top.map((c) => el('div', { class: 'k-cause' },
		el('span', {}, c.code.replace(/_/g, ' ')), el('span', { class: 'n' }, c.count))) :
		el('div', { class: 'k-empty' }, 'No causes reported.'));

	const offline = agents.filter((a) => !a.online);
	fill($('#k-offline'), offline.length ? 'Offline: ' + offline.map((a) =>
		a.agent + (a.station ? ' (' + (a.site ? a.site + ' / ' : '') + a.station + ')' : ''))
		.join(', ') : '');
}

function stamp(ok) {
	const u = $('#k-updated');
	const d = new Date();
	const p = (x) => String(x).padStart(2, '0');
	u.className = 'live ' + (ok ? 'on' : 'off');
	u.textContent = ok ? 'updated ' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' +
		p(d.getSeconds()) : 'dashboard unreachable — retrying';
}

async function load() {
	try {
		const [s, a, old] = await Promise.all([api('/api/v1/summary'), api('/api/v1/agents'),
			api('/api/v1/devices?status=stale&sort=-age&limit=' + OLDEST)]);
		render(s, Array.isArray(a) ? a : a.agents || []);
		renderOldest(old.devices || []);
		stamp(true);
	} catch (e) {
		stamp(false);
	}
}

function clock() {
	const d = new Date();
	const p = (x) => String(x).padStart(2, '0');
	$('#k-clock').textContent = p(d.getHours()) + ':' + p(d.getMinutes());
}

clock();
setInterval(clock, 10000);
start(() => {
	load();
	const soon = debounce(load, 5000); // a wall screen need not follow every message
	live({ summary: soon, agent: soon, device: soon, resync: soon });
	setInterval(load, 30000);
	setTimeout(() => location.reload(), 6 * 3600 * 1000);
});
