// Backup and restore of the configuration (admin): a download, and an upload that replaces
// every extension, user and setting after a confirmation.
import { api } from '../api.js';
import { h, mount, confirmDialog, errorLine, showError } from '../ui.js';

export async function render() {
  const err = errorLine();
  const done = h('p.ok#restore-done', {});
  const file = h('input#restore-file', { type: 'file', accept: '.json,application/json' });
  const form = h('form.inline#restore-form', {}, h('label', {}, 'Backup file', file),
    h('button.danger', { type: 'submit' }, 'Restore…'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null);
    done.textContent = '';
    const f = file.files[0];
    if (!f) return showError(err, new Error('Choose a backup file first.'));
    let backup;
    try {
      backup = JSON.parse(await f.text());
    } catch (e) {
      return showError(err, new Error(`${f.name} is not a backup file (not JSON).`));
    }
    const made = backup.created_unix ? new Date(backup.created_unix * 1000).toLocaleString() : '?';
    if (!(await confirmDialog(`Replace the whole configuration (extensions, users, settings) by the backup of ${backup.node || '?'} made ${made}? Everything changed since is lost.`))) return;
    try {
      const r = await api('POST', '/restore', backup);
      done.textContent = `Restored ${r.restored} records.`;
    } catch (e) {
      showError(err, e);
    }
  });
  mount(h('h1', {}, 'Backup and restore'),
    h('div.card', {}, h('h2', {}, 'Backup'),
      h('p', {}, 'The configuration: extensions, users and settings (with password hashes, so keep the file safe). ',
        'Registrations, bans, call records and the audit log are not in it.'),
      h('a.button#backup-download', { href: '/api/v1/backup', download: '' }, 'Download backup')),
    h('div.card', {}, h('h2', {}, 'Restore'),
      h('p', {}, 'Replaces the configuration in one step; a damaged file, or one of another version, changes nothing. ',
        'Logged-in sessions stay valid; the users of the backup log in with its passwords.'),
      form, err, done));
}
