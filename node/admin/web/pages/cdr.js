// Call detail records (FEATURES.md 10.1): search by time range, caller, callee, type and
// status, paged, with a CSV download of the same search. The extension user's call log
// (portal.js) is the same view over /me/cdr, where the node picks whose calls they are.
import { api } from '../api.js';
import { h, mount, table, field, errorLine, showError } from '../ui.js';

const PAGE = 50;
const STATUSES = ['', 'answered', 'no_answer', 'busy', 'failed', 'cancelled'];
const TYPES = ['', 'internal', 'inbound', 'outbound'];

function stamp(ms) {
  return ms ? new Date(ms).toLocaleString() : '—';
}

// A datetime-local input's value as unix seconds ('' when empty).
function unixOf(value) {
  return value ? String(Math.floor(new Date(value).getTime() / 1000)) : '';
}

// The value for a datetime-local input, `ms` from now, in local time.
function localInput(ms) {
  const d = new Date(ms);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

export function cdrTable(records) {
  if (records.length === 0) return h('p.muted#cdr-empty', {}, 'No call matches.');
  return table(['Start', 'Caller', 'Callee', 'Answered by', 'Type', 'Status', 'Duration', 'Billable', 'Trunk', 'Cause'],
    records, (c) => h('tr', { 'data-cdr': c.id },
      h('td', {}, stamp(c.start_unix_ms)),
      h('td', {}, c.caller_name ? `${c.caller} (${c.caller_name})` : c.caller),
      h('td', {}, c.callee), h('td', {}, c.final_callee || '—'), h('td', {}, c.type),
      h('td.status', {}, c.status), h('td', {}, `${c.duration} s`), h('td', {}, `${c.billable} s`),
      h('td', {}, c.trunk || '—'), h('td', {}, c.cause || '—')));
}

// The search form, results and pager over `path` (/cdr or /me/cdr). `own` hides the
// caller and callee filters, which /me/cdr refuses.
export function cdrSearch(path, own = false) {
  const err = errorLine();
  const results = h('div#cdr-results', {});
  const pager = h('div.inline#cdr-pager', {});
  const csv = h('a.button.secondary#cdr-csv', { download: 'cdr.csv' }, 'Download CSV');
  const form = h('form.inline#cdr-search', {},
    field('From', 'from', { type: 'datetime-local', value: localInput(Date.now() - 86400000) }),
    field('To', 'to', { type: 'datetime-local' }),
    own ? null : field('Caller', 'caller', { pattern: '[0-9+*#]*' }),
    own ? null : field('Callee', 'callee', { pattern: '[0-9+*#]*' }),
    field('Type', 'type', { options: TYPES }),
    field('Status', 'status', { options: STATUSES }),
    h('button', { type: 'submit' }, 'Search'), csv);
  for (const o of form.querySelectorAll('option[value=""]')) o.textContent = 'any';
  let offset = 0;

  function query(extra) {
    const p = new URLSearchParams();
    const v = (n) => (form.elements[n] ? form.elements[n].value : '');
    for (const [k, val] of [['from', unixOf(v('from'))], ['to', unixOf(v('to'))], ['caller', v('caller')],
      ['callee', v('callee')], ['type', v('type')], ['status', v('status')]]) {
      if (val) p.set(k, val);
    }
    for (const [k, val] of Object.entries(extra)) p.set(k, val);
    return `${path}?${p}`;
  }

  async function search() {
    showError(err, null);
    try {
      const r = await api('GET', query({ offset, limit: PAGE }));
      results.replaceChildren(cdrTable(r.records));
      pager.replaceChildren(
        h('button.secondary#cdr-prev', { type: 'button', disabled: offset === 0, on: { click: () => { offset = Math.max(0, offset - PAGE); search(); } } }, 'Previous'),
        h('span.muted', {}, r.records.length ? `${offset + 1}–${offset + r.records.length}` : ''),
        h('button.secondary#cdr-next', { type: 'button', disabled: !r.more, on: { click: () => { offset += PAGE; search(); } } }, 'Next'));
      // The whole search (not just this page), as the node formats it.
      csv.href = `/api/v1${query({ format: 'csv', limit: 10000 })}`;
    } catch (e) {
      showError(err, e);
    }
  }
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    offset = 0;
    search();
  });
  return { node: h('div', {}, form, err, results, pager), search };
}

export async function render() {
  const s = cdrSearch('/cdr');
  mount(h('h1', {}, 'Call records'), s.node);
  await s.search();
}
