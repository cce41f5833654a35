// Alert delivery panel of the alerts page: GET /api/v1/notify/status — per receiver what is
// queued, delivered, failed, dead (dead letters) and dropped, its last error, and the newest dead
// letters. Re-read every 15 s.
import { api, el, fill, $, fmtAge, fmtTime, badge } from './common.js';

const REFRESH_MS = 15000;

function receiverRow(r) {
	return el('tr', {},
		el('td', {}, el('code', {}, r.name)),
		el('td', {}, r.type + (r.digest_s ? ' · digest ' + fmtAge(r.digest_s) : '')),
		el('td', { class: 'num' }, r.queued),
		el('td', { class: 'num' }, r.delivered),
		el('td', { class: 'num' }, r.failures),
		el('td', { class: 'num' }, r.dead ? badge(String(r.dead), 'stale') : '0'),
		el('td', { class: 'num' }, r.dropped ? badge(String(r.dropped), 'stale') : '0'),
		el('td', { class: 'wrap' },
			r.last_error ? r.last_error + ' (' + fmtTime(r.last_error_at) + ')' : '—'));
}

async function loadDelivery() {
	let s;
	try {
		s = await api('/api/v1/notify/status');
	} catch (e) {
		fill($('#notify-summary'), 'Delivery status cannot be read: ' + e.message);
		return;
	}
	fill($('#notify-summary'),
		s.receivers.length ? '' : 'No receiver configured (keys receiver1 … receiver8). ',
		s.queued + ' queued · ' + s.delivered + ' delivered · ',
		el('span', { id: 'notify-dead' },
			s.dead ? badge(s.dead + ' dead letters', 'stale') : '0 dead letters'),
		' · ' + s.dropped + ' dropped (queue full)');
	fill($('#notify-receivers tbody'), s.receivers.map(receiverRow));
	fill($('#notify-dead-letters'), s.dead_letters.map((d) => el('li', {},
		el('code', {}, d.receiver), ' ', d.rule + ' ' + d.state + ' (alert ' + d.alert_id + '), ' +
		d.attempts + (d.attempts === 1 ? ' attempt, ' : ' attempts, ') + fmtTime(d.dead_at) + ': ' +
		d.error)));
}

document.addEventListener('DOMContentLoaded', () => {
	if (!$('#notify-panel'))
		return;
	loadDelivery();
	setInterval(loadDelivery, REFRESH_MS);
});
