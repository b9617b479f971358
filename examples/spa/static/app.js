// The single-page app: plain JavaScript, no build step. It talks only to
// its backend-for-frontend under /bff/, always with the anti-forgery header
// X-CSRF: 1, and never sees a token: the browser holds only an HttpOnly
// session cookie.
'use strict';

const $ = (id) => document.getElementById(id);

// bff calls the backend-for-frontend with the anti-forgery header.
function bff(path, options = {}) {
  return fetch(path, {
    ...options,
    credentials: 'same-origin',
    headers: { 'X-CSRF': '1', Accept: 'application/json', ...(options.headers || {}) },
  });
}

// signInAgain says why the user must sign in and offers the link.
function signInAgain(code) {
  $('loading').hidden = true;
  $('signed-in').hidden = true;
  $('user').hidden = true;
  $('why').textContent = code === 'reauth_required'
    ? 'Your session has ended. Please sign in again.'
    : 'You are not signed in.';
  $('signed-out').hidden = false;
}

// needsSignIn reads a 401 of the BFF: its codes ask for a new sign-in; any
// other 401 is the Domain API's (a refused token, already dropped: retry).
async function needsSignIn(resp) {
  if (resp.status !== 401) return false;
  const body = await resp.json().catch(() => ({}));
  if (body.error === 'login_required' || body.error === 'reauth_required') {
    signInAgain(body.error);
    return true;
  }
  return false;
}

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = false;
}

function duration(seconds) {
  const days = Math.floor(seconds / 86400);
  if (days >= 1) return days + (days === 1 ? ' day' : ' days');
  const hours = Math.floor(seconds / 3600);
  if (hours >= 1) return hours + (hours === 1 ? ' hour' : ' hours');
  return Math.max(1, Math.floor(seconds / 60)) + ' minutes';
}

async function loadCustomers() {
  $('error').hidden = true;
  let resp;
  try {
    resp = await bff('/bff/api/Crm_Sales_Customers?$top=10');
  } catch (e) {
    showError('The server cannot be reached.');
    return;
  }
  if (await needsSignIn(resp)) return;
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    if (body.error === 'license_exhausted') {
      // The BFF's plain words: all licenses of the instance are in use.
      showError(body.error_description);
      return;
    }
    showError('The Domain API answered ' + resp.status + '. Try Reload.');
    return;
  }
  const data = await resp.json();
  const rows = $('customers').tBodies[0];
  rows.replaceChildren();
  for (const c of data.value || []) {
    const tr = rows.insertRow();
    for (const v of [c.Number, c.Name, c.Active ? 'yes' : 'no']) {
      tr.insertCell().textContent = v;
    }
  }
  const caller = resp.headers.get('X-Erpnet-Caller');
  $('caller').textContent = caller ? 'Read from the Domain API as ' + caller + '.' : '';
}

async function start() {
  let resp;
  try {
    resp = await bff('/bff/user');
  } catch (e) {
    $('loading').textContent = 'The server cannot be reached.';
    return;
  }
  if (await needsSignIn(resp)) return;
  if (!resp.ok) {
    $('loading').textContent = 'Sign-in is unavailable right now. Please try again later.';
    return;
  }
  const user = await resp.json();
  $('name').textContent = user.name || user.sub;
  $('sign-out').href = user.logoutUrl; // a navigation: the server signs out and ends the identity server's session
  $('expires').textContent = duration(user.sessionExpiresIn);
  $('loading').hidden = true;
  $('user').hidden = false;
  $('signed-in').hidden = false;
  await loadCustomers();
}

$('reload').addEventListener('click', loadCustomers);
start();
