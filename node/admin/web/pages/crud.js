// One list-and-editor page per API collection (trunks, routes, DIDs, ...): a table of the
// items, a form to create or edit one, delete behind a confirmation. The API validates;
// a refusal that names a field is shown next to that field.
import { api } from '../api.js';
import { h, table, confirmDialog, errorLine, showError, every } from '../ui.js';

// Field kinds: text, number, password (blank keeps the stored one), checkbox, select
// ({options}: a list, or an async function giving one), multi (check boxes of {options}),
// rows ({cols: [{name, label, options?, split?}]}, one row per list item; a single column
// gives a list of strings; rows can be moved up, for order), destination ({type, id};
// {optional} allows none).

async function optionsOf(f) {
  return typeof f.options === 'function' ? f.options() : f.options || [];
}

function selectOf(name, options, value) {
  return h('select', { name }, options.map((o) => h('option', { value: o, selected: o === value }, o || '—')));
}

function rowsControl(f, value, cols) {
  const list = h('div.rows', {});
  const addRow = (item) => {
    const cells = cols.map((c) => {
      const v = cols.length === 1 && !f.objects ? item : (item || {})[c.name];
      const text = Array.isArray(v) ? v.join(',') : v ?? '';
      return c.options ? selectOf(c.name, c.options, text)
        : h('input', { name: c.name, value: text, title: c.label, 'aria-label': c.label, size: c.size || 12 });
    });
    const row = h('div.row', {}, cells,
      h('button.secondary', { type: 'button', title: 'Move up', on: { click: () => row.previousSibling && list.insertBefore(row, row.previousSibling) } }, '↑'),
      h('button.secondary', { type: 'button', title: 'Remove', on: { click: () => row.remove() } }, '×'));
    list.append(row);
  };
  for (const item of value || []) addRow(item);
  const control = h('div', { 'data-rows': f.name }, list,
    h('button.secondary', { type: 'button', on: { click: () => addRow(null) } }, `+ ${f.rowLabel || 'row'}`));
  control.read = () => [...list.children].map((row) => {
    const get = (c) => {
      const v = row.querySelector(`[name="${c.name}"]`).value.trim();
      return c.split ? v.split(/[\s,]+/).filter((x) => x) : v;
    };
    if (cols.length === 1 && !f.objects) return get(cols[0]);
    return Object.fromEntries(cols.map((c) => [c.name, get(c)]));
  }).filter((v) => (typeof v === 'string' ? v !== '' : Object.values(v).some((x) => x.length)));
  return control;
}

// The control of field `f` showing `value`; control.read() gives the value to send
// (undefined: leave the field out).
async function controlOf(f, value, creating) {
  let c;
  switch (f.kind || 'text') {
    case 'checkbox':
      c = h('input', { type: 'checkbox', name: f.name, checked: !!value });
      c.read = () => c.checked;
      return c;
    case 'number':
      c = h('input', { type: 'number', name: f.name, value: value ?? '', min: f.min, max: f.max });
      c.read = () => (c.value === '' ? undefined : Number(c.value));
      return c;
    case 'password':
      c = h('input', { type: 'password', name: f.name, autocomplete: 'new-password', title: creating ? '' : 'leave empty to keep the stored one' });
      c.read = () => (c.value === '' ? undefined : c.value);
      return c;
    case 'select':
      c = selectOf(f.name, await optionsOf(f), value ?? f.default ?? '');
      c.read = () => c.value;
      return c;
    case 'multi': {
      const boxes = (await optionsOf(f)).map((o) => h('input', { type: 'checkbox', value: o, checked: (value || f.default || []).includes(o) }));
      c = h('span.inline', {}, boxes.map((b) => h('label.check', {}, b, ' ', b.value)));
      c.read = () => boxes.filter((b) => b.checked).map((b) => b.value);
      return c;
    }
    case 'rows': {
      const cols = await Promise.all(f.cols.map(async (col) => ({ ...col, options: col.options ? await optionsOf(col) : null })));
      return rowsControl(f, value, cols);
    }
    case 'destination': {
      const types = (f.optional ? [''] : []).concat(await destinationTypes());
      const type = selectOf(`${f.name}.type`, types, value ? value.type : '');
      const id = h('input', { name: `${f.name}.id`, value: value ? value.id : '', title: 'number or name', 'aria-label': 'number or name', size: 12 });
      c = h('span.inline', {}, type, id);
      c.read = () => (type.value === '' ? null : { type: type.value, id: type.value === 'hangup' ? '' : id.value.trim() });
      return c;
    }
    default:
      c = h('input', { name: f.name, value: value ?? '', size: f.size || 16 });
      c.read = () => (c.value === '' && creating ? undefined : c.value.trim());
      return c;
  }
}

// What a destination may be, as the node validates it; asked once (it changes only with
// the software).
let destinationTypesOnce = null;
export function destinationTypes() {
  destinationTypesOnce ||= api('GET', '/destination-types').then((r) => r.types, (e) => {
    destinationTypesOnce = null;  // asked again next time
    throw e;
  });
  return destinationTypesOnce;
}

export function destinationText(d) {
  if (!d) return '—';
  return d.type === 'hangup' ? 'hang up' : `${d.type.replace('_', ' ')} ${d.id}`;
}

// Renders the page into `root`. spec: {id, path, key, listKey?, noun, fields, columns:
// [[label, item => text or node]], poll? (ms: the list refreshes, for live status), noEdit?
// (nothing but the key: create and delete only)}.
// Returns a stopper for the polling.
export async function crudSection(root, spec) {
  const listKey = spec.listKey || 'items';
  const key = spec.key || 'name';
  const list = h(`div#${spec.id}-list`, {});
  const editor = h(`div.card#${spec.id}-editor`, {});
  const err = errorLine();
  root.replaceChildren(editor, err, list);

  async function showEditor(item) {
    const creating = !item;
    const general = errorLine();
    const controls = {};
    const rows = [];
    for (const f of spec.fields) {
      if (!creating && f.name === key) continue;  // the key is fixed once created
      const c = await controlOf(f, item ? item[f.name] : f.default, creating);
      controls[f.name] = c;
      // Composite controls hold several inputs and buttons: a label would forward clicks.
      const composite = ['rows', 'multi', 'destination'].includes(f.kind);
      rows.push(composite
        ? h('fieldset', { 'data-field': f.name }, h('legend', {}, f.label), c, h('span.field-error', {}))
        : h('label', { 'data-field': f.name }, f.label, c, h('span.field-error', {})));
    }
    const form = h(`form.inline#${spec.id}-form`, {}, rows,
      h('button', { type: 'submit' }, creating ? `Add ${spec.noun}` : 'Save'),
      creating ? null : h('button.secondary', { type: 'button', on: { click: () => showEditor(null) } }, 'Cancel'),
      general);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
      showError(general, null);
      const body = {};
      for (const [name, c] of Object.entries(controls)) {
        const v = c.read();
        if (v !== undefined) body[name] = v;
      }
      try {
        if (creating) await api('POST', spec.path, body);
        else await api('PUT', `${spec.path}/${encodeURIComponent(item[key])}`, body);
        await showEditor(null);
        await refresh();
      } catch (e) {
        const slot = e.field && form.querySelector(`[data-field="${e.field}"] .field-error`);
        // Next to the field its name goes without saying.
        if (slot) slot.textContent = e.message.startsWith(`${e.field} `) ? e.message.slice(e.field.length + 1) : e.message;
        else showError(general, e);
      }
    });
    editor.replaceChildren(h('h2', {}, creating ? `New ${spec.noun}` : `Edit ${spec.noun} ${item[key]}`), form);
  }

  async function remove(item) {
    if (!(await confirmDialog(`Delete ${spec.noun} ${item[key]}?`))) return;
    try {
      await api('DELETE', `${spec.path}/${encodeURIComponent(item[key])}`);
      await refresh();
    } catch (e) {
      showError(err, e);
    }
  }

  async function refresh() {
    const items = (await api('GET', spec.path))[listKey];
    list.replaceChildren(items.length === 0 ? h('p.muted', {}, `No ${spec.noun} yet.`)
      : table([...spec.columns.map(([label]) => label), ''], items, (x) => h('tr', { 'data-key': x[key] },
        spec.columns.map(([, show]) => h('td', {}, show(x))),
        h('td.actions', {},
          spec.noEdit ? null : h('button.secondary', { on: { click: () => showEditor(x) } }, 'Edit'),
          h('button.danger', { on: { click: () => remove(x) } }, 'Delete')))));
  }

  await showEditor(null);
  await refresh();
  if (!spec.poll) return null;
  return every(spec.poll, async () => {
    try {
      await refresh();
    } catch (e) {
      showError(err, e);
    }
  });
}

// The names of a collection's items, for a select (e.g. the trunks of a route).
export function namesOf(path, key = 'name', listKey = 'items', withNone = false) {
  return async () => (withNone ? [''] : []).concat((await api('GET', path))[listKey].map((x) => x[key]));
}
