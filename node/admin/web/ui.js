// Small DOM helpers. Text always goes in as text nodes, never as HTML.

// h('tag.class#id', {attrs, on: {click}}, ...children)
export function h(spec, attrs = {}, ...children) {
  const [, tag, rest] = spec.match(/^([a-z0-9]+)(.*)$/);
  const el = document.createElement(tag);
  for (const part of rest.match(/[.#][^.#]+/g) || []) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false && v !== null && v !== undefined) el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function mount(...children) {
  const main = document.getElementById('main');
  main.replaceChildren(...children);
  return main;
}

export function table(columns, rows, rowFn) {
  return h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.map(rowFn)));
}

export function dl(pairs) {
  return h('dl', {}, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function badge(text) {
  return h(`span.badge.${String(text).replace(/[^a-z-]/g, '') || 'none'}`, {}, text);
}

// A labelled input; `type` 'checkbox' makes a check box.
export function field(label, name, { type = 'text', value = '', options, ...rest } = {}) {
  let input;
  if (options) {
    input = h('select', { name, ...rest }, options.map((o) => h('option', { value: o, selected: o === value }, o)));
  } else if (type === 'checkbox') {
    input = h('input', { type, name, checked: !!value, ...rest });
    return h('label.check', {}, input, ' ', label);
  } else {
    input = h('input', { type, name, value, ...rest });
  }
  return h('label', {}, label, input);
}

// The values of a form's named inputs; check boxes give booleans, empty fields are left out
// when `dropEmpty`.
export function formValues(form, dropEmpty = false) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (!(dropEmpty && el.value === '')) out[el.name] = el.value;
  }
  return out;
}

// Asks for confirmation in the page's <dialog>; resolves true for "Confirm".
export function confirmDialog(text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

export function errorLine() {
  return h('p.error', { role: 'alert' });
}

export function showError(line, err) {
  line.textContent = err ? err.message : '';
}

export function when(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : '—';
}

// Repeats `fn` every `ms` while the page that started it is shown; returns a stopper.
export function every(ms, fn) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (e) { /* shown by fn */ }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  let timer = setTimeout(tick, 0);
  return () => { stopped = true; clearTimeout(timer); };
}
