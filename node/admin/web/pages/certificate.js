// The HTTPS certificate (admin): what is served, and the upload of a key and certificate
// (PEM), checked by the node and served to new connections at once on both nodes.
import { api } from '../api.js';
import { h, mount, dl, when, errorLine, showError } from '../ui.js';

function describe(c) {
  return dl([['Source', c.source === 'uploaded' ? `uploaded by ${c.uploaded_by}, ${when(c.uploaded_unix)}` : 'self-signed (generated at first boot)'],
    ['Subject', c.subject], ['Issuer', c.issuer], ['Names', c.names.join(', ') || '—'],
    ['Valid', `${when(c.not_before_unix)} – ${when(c.not_after_unix)}`], ['SHA-256', h('code', {}, c.sha256)]]);
}

export async function render() {
  const current = h('div.card#cert-current', {}, describe(await api('GET', '/certificate')));
  const err = errorLine();
  const done = h('p.ok#cert-saved', {});
  const file = (label, name, required) => h('label', {}, label,
    h('input', { type: 'file', name, accept: '.pem,.crt,.key,.cer', required }));
  const form = h('form.inline#cert-form', {},
    file('Private key (PEM, unencrypted)', 'key', true), file('Certificate (PEM)', 'certificate', true),
    file('Chain: intermediates (PEM, optional)', 'chain', false),
    h('button', { type: 'submit' }, 'Upload'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null);
    done.textContent = '';
    const body = {};
    for (const name of ['key', 'certificate', 'chain']) {
      const f = form[name].files[0];
      if (f) body[name] = await f.text();
    }
    try {
      const c = await api('PUT', '/certificate', body);
      current.replaceChildren(describe(c));
      done.textContent = 'Uploaded: new connections get it now, on both nodes; no restart needed.';
    } catch (e) {
      showError(err, e);
    }
  });
  mount(h('h1', {}, 'HTTPS certificate'), current,
    h('div.card', {}, h('h2', {}, 'Replace it'),
      h('p.muted', {}, 'The key must match the certificate and the certificate must be valid now. It is stored with the replicated configuration (and in backups), and served at once without a restart.'),
      form, err, done));
}
