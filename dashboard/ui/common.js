// cradle dashboard: what every page shares — API calls (session cookie, CSRF header, 401 -> login),
// the header bar, the live stream, and formatting. Pages hold no data: everything comes from
// /api/v1. DOM is built with el(), never from HTML strings, so names from phones cannot inject.

let me = null;
let mePromise = null;

// Where to go to log in, coming back here afterwards.
export function toLogin() {
	const next = location.pathname + location.search;
	location.replace('/login?next=' + encodeURIComponent(next));
}

export class ApiError extends Error {
	constructor(status, code, message) {
		super(message);
		this.status = status;
		this.code = code;
	}
}

// fetch() against the API: JSON in and out, CSRF token on state-changing requests, a 401 sends
// the browser to the login page (the promise then never settles, so callers need no check).
export async function api(path, opts = {}) {
	const init = { method: opts.method || 'GET', credentials: 'same-origin', headers: {} };
	init.headers.Accept = 'application/json';
	if (init.method !== 'GET') {
		if (me && me.csrf)
			init.headers['X-CSRF-Token'] = me.csrf;
		if (opts.body !== undefined) {
			init.headers['Content-Type'] = 'application/json';
			init.body = JSON.stringify(opts.body);
		}
	}
	const res = await fetch(path, init);
	if (res.status === 401 && !opts.noRedirect) {
		toLogin();
		return new Promise(() => {});
	}
	if (res.status === 204)
		return null;
	let data = null;
	try {
		data = await res.json();
	} catch (e) {
		data = null;
	}
	if (!res.ok) {
		const err = data && data.error ? data.error : {};
		throw new ApiError(res.status, err.code || 'http_' + res.status,
			err.message || res.status + ' ' + res.statusText);
	}
	return data;
}

// The caller: {user, role, csrf, expires_at}. Fetched once per page.
export function whoami() {
	if (!mePromise) {
		mePromise = api('/api/v1/me').then((m) => {
			me = m;
			return m;
		});
		mePromise.catch(() => {
			mePromise = null; // try again next time
		});
	}
	return mePromise;
}

// Runs a page: who is logged in first (a 401 goes to /login), then start(me). A dashboard
// that cannot be reached says so on the page instead of failing silently.
export function start(fn) {
	whoami().then(fn).catch((e) => notice('The dashboard cannot be reached: ' + e.message, true));
}

export function canOperate() {
	return !!me && (me.role === 'operator' || me.role === 'admin');
}

// el('a', {href: '/x', class: 'y'}, 'text', child...) -> element. Attributes starting with "on"
// are listeners; null/undefined/false children are skipped.
export function el(tag, attrs, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === null || v === undefined || v === false)
			continue;
		if (k.startsWith('on'))
			e.addEventListener(k.slice(2), v);
		else if (k === 'class')
			e.className = v;
		else if (k === 'text')
			e.textContent = v;
		else
			e.setAttribute(k, v === true ? '' : v);
	}
	for (const c of children.flat()) {
		if (c === null || c === undefined || c === false)
			continue;
		e.append(c instanceof Node ? c : String(c));
	}
	return e;
}

export function $(sel) {
	return document.querySelector(sel);
}

// Replaces the children of node.
export function fill(node, ...children) {
	node.replaceChildren();
	for (const c of children.flat())
		if (c !== null && c !== undefined && c !== false)
			node.append(c instanceof Node ? c : String(c));
}

// The header bar: brand, navigation, live indicator, user and logout.
export function header(here) {
	const pages = [['/', 'Overview', 'overview'], ['/devices', 'Devices', 'devices'],
		['/alerts', 'Alerts', 'alerts'], ['/jobs', 'Jobs', 'jobs'],
		['/kiosk', 'Wall screen', 'kiosk']];
	const live = el('span', { class: 'live', id: 'live', title: 'live updates' }, 'connecting');
	const who = el('span', { class: 'who', id: 'who' });
	const out = el('button', { type: 'button', id: 'logout', onclick: logout }, 'Log out');
	const bar = el('header', { class: 'top' },
		el('a', { class: 'brand', href: '/' }, 'cradle'),
		el('nav', {}, pages.map(([href, label, id]) =>
			el('a', { href, class: id === here ? 'here' : null }, label))),
		live, who, out);
	document.body.prepend(bar);
	whoami().then((m) => fill(who, m.user + ' · ' + m.role)).catch(() => {});
}

export async function logout() {
	try {
		await api('/api/v1/logout', { method: 'POST', noRedirect: true });
	} finally {
		location.replace('/login');
	}
}

// Subscribes to GET /api/v1/stream. handlers: {device(obj), agent(obj), command(obj),
// alert(obj), job(obj), summary(), resync()}. EventSource reconnects by itself after a dropped
// connection (a refused one is retried here every 5 s), and after any gap the page re-reads
// everything (resync); the indicator says whether it is live. A stream refused because the
// session ended shows as an error: ask /me, which sends us to /login on a 401. A stream the
// server ends because its credential ended says why in a last "end" event: after a logout,
// revocation or expiry the page goes to /login at once (no reconnect loop); after a change of
// role it reloads, to be served (and show its buttons) under the new role.
export function live(handlers) {
	const ind = document.getElementById('live');
	const mark = (cls, text) => {
		if (ind) {
			ind.className = 'live ' + cls;
			ind.textContent = text;
		}
	};
	let es = null;
	let reopened = false;
	const open = () => {
		es = new EventSource('/api/v1/stream');
		es.onopen = () => {
			mark('on', 'live');
			// Back after a gap: what changed meanwhile was not streamed, read it all.
			if (reopened && handlers.resync)
				handlers.resync();
		};
		es.onerror = () => {
			mark('off', 'reconnecting');
			reopened = true;
			api('/api/v1/me').catch(() => {});
			// A refused stream (an error status) is not retried by the browser: retry here.
			if (es.readyState === EventSource.CLOSED)
				setTimeout(open, 5000);
		};
		for (const kind of ['device', 'agent', 'command', 'alert', 'job']) {
			es.addEventListener(kind, (ev) => {
				let obj;
				try {
					obj = JSON.parse(ev.data);
				} catch (e) {
					return;
				}
				if (handlers[kind])
					handlers[kind](obj);
			});
		}
		es.addEventListener('end', (ev) => {
			let why = '';
			try {
				why = JSON.parse(ev.data).reason;
			} catch (e) {
				// no reason: as good as a logout
			}
			es.close();
			mark('off', 'ended');
			if (why === 'role_changed')
				location.reload();
			else
				toLogin();
		});
		for (const kind of ['summary', 'resync']) {
			es.addEventListener(kind, () => {
				if (handlers[kind])
					handlers[kind]();
			});
		}
	};
	open();
	window.addEventListener('pagehide', () => es.close());
}

// Runs fn at most once per ms milliseconds, trailing: bursts of live events cost one refresh.
export function debounce(fn, ms) {
	let timer = null;
	return () => {
		if (timer)
			return;
		timer = setTimeout(() => {
			timer = null;
			fn();
		}, ms);
	};
}

// 3 d 4 h, 5 h 12 min, 40 s: the two largest units.
export function fmtAge(s) {
	if (s === null || s === undefined)
		return '—';
	s = Math.max(0, Math.round(s));
	const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
	const m = Math.floor((s % 3600) / 60);
	if (d > 0)
		return d + ' d ' + h + ' h';
	if (h > 0)
		return h + ' h ' + m + ' min';
	if (m > 0)
		return m + ' min';
	return s + ' s';
}

// "2026-01-15 02:03" in the browser's time zone; full RFC 3339 in the tooltip.
export function fmtTime(iso, withSeconds) {
	if (!iso)
		return '—';
	const d = new Date(iso);
	if (isNaN(d))
		return iso;
	const p = (n) => String(n).padStart(2, '0');
	let s = d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' +
		p(d.getHours()) + ':' + p(d.getMinutes());
	if (withSeconds)
		s += ':' + p(d.getSeconds());
	return s;
}

// "5 min ago" from an RFC 3339 time.
export function fmtAgo(iso) {
	if (!iso)
		return '—';
	const t = Date.parse(iso);
	if (isNaN(t))
		return iso;
	if (Date.now() - t < 60000)
		return 'just now';
	return fmtAge((Date.now() - t) / 1000) + ' ago';
}

export function timeEl(iso, withSeconds) {
	return el('time', { datetime: iso || null, title: iso || null }, fmtTime(iso, withSeconds));
}

export function badge(text, cls) {
	return el('span', { class: 'badge ' + (cls || text || '') }, text || '—');
}

export function pct(x) {
	if (x === null || x === undefined || isNaN(x))
		return '—';
	return Math.round(x * 100) + ' %';
}

export function shareBar(share) {
	const w = Math.max(0, Math.min(1, share || 0)) * 100;
	const fillEl = el('span');
	fillEl.style.width = w + '%';
	return el('div', { class: 'bar', title: pct(share) }, fillEl);
}

// A message at the top of main: errors the user should see (API down, forbidden, ...).
export function notice(text, isError) {
	const main = document.querySelector('main');
	let n = document.getElementById('notice');
	if (!text) {
		if (n)
			n.remove();
		return;
	}
	if (!n) {
		n = el('div', { id: 'notice' });
		main.prepend(n);
	}
	n.className = 'notice' + (isError ? ' error' : '');
	n.textContent = text;
}

// The device page's address.
export function deviceHref(udid) {
	return '/devices/' + encodeURIComponent(udid);
}

export const STATUSES = ['ok', 'stale', 'unknown', 'missing'];

// The diagnosis codes documented in docs/diagnosis.md; the vocabulary is open, so pages also
// show codes they find in the data.
export const CAUSES = ['icloud_storage_full', 'network_unavailable', 'icloud_backup_disabled',
	'apple_id_problem', 'ios_outdated', 'not_on_power', 'never_backed_up', 'not_trusted',
	'passcode_required', 'no_backup_attempt', 'backup_attempt_failed', 'unknown'];
