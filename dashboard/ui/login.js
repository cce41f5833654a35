// Login: POST /api/v1/login sets the session cookie; then back to the page that sent us here.
const form = document.getElementById('login-form');
const errBox = document.getElementById('login-error');
const submit = document.getElementById('login-submit');

function showError(text) {
	errBox.textContent = text;
	errBox.classList.remove('hidden');
}

// Only a path on this site: never an open redirect to another host.
function nextPage() {
	const next = new URLSearchParams(location.search).get('next');
	if (next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login'))
		return next;
	return '/';
}

form.addEventListener('submit', async (ev) => {
	ev.preventDefault();
	errBox.classList.add('hidden');
	submit.disabled = true;
	try {
		const res = await fetch('/api/v1/login', {
			method: 'POST',
			credentials: 'same-origin',
			headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
			body: JSON.stringify({
				user: document.getElementById('user').value,
				password: document.getElementById('password').value,
			}),
		});
		if (res.ok) {
			location.replace(nextPage());
			return;
		}
		if (res.status === 401) {
			showError('Wrong user name or password.');
		} else if (res.status === 429) {
			const wait = res.headers.get('Retry-After');
			showError('Too many failed attempts. Try again' +
				(wait ? ' in ' + wait + ' s.' : ' later.'));
		} else {
			showError('Login failed: HTTP ' + res.status + '.');
		}
	} catch (e) {
		showError('The dashboard cannot be reached.');
	} finally {
		submit.disabled = false;
	}
});
