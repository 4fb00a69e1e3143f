// Registered contacts (GET /api/v1/registrations) as the dashboard and the extensions page
// show them.
import { h, table } from '../ui.js';

// "ok 12 ms", "no answer" or "unchecked" for a contact's last qualify OPTIONS.
export function qualify(r) {
  if (!r.qualify_unix) return h('span.muted', {}, 'unchecked');
  return r.qualify_ok ? h('span.ok', {}, `ok ${r.qualify_rtt_ms} ms`) : h('span.bad', {}, 'no answer');
}

export function expiresIn(seconds) {
  return seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
}

// The contacts of each number: {number: [registration, ...]}.
export function byNumber(regs) {
  const out = {};
  for (const r of regs) (out[r.number] ||= []).push(r);
  return out;
}

export function registrationTable(regs) {
  if (regs.length === 0) return h('p.muted', {}, 'No extension is registered.');
  return table(['Number', 'Contact', 'Source', 'User agent', 'Expires in', 'Qualify'], regs,
    (r) => h('tr', { 'data-reg': r.number },
      h('td', {}, r.number), h('td', {}, r.contact), h('td', {}, `${r.received} (${r.transport})`),
      h('td', {}, r.user_agent || '—'), h('td', {}, expiresIn(r.expires_in)), h('td', {}, qualify(r))));
}
