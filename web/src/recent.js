// The signed-in user's recent jobs, newest first, live.
import { collection, limit, onSnapshot, orderBy, query, where } from 'firebase/firestore';

import { millis } from './job.js';

const RECENT = 12;

/**
 * Listen to the user's jobs; `open(jobId)` is called when one is clicked, `onJobs(jobs)` with each
 * new list. Returns the unsubscribe.
 */
export function listenRecent(db, uid, open, onError, onJobs = () => {}) {
  // Rules allow listing only with this filter on `uid`; the index is (uid, createdAt desc).
  const jobs = query(
    collection(db, 'jobs'),
    where('uid', '==', uid),
    orderBy('createdAt', 'desc'),
    limit(RECENT),
  );
  return onSnapshot(
    jobs,
    (snapshot) => {
      const jobs = snapshot.docs.map((d) => ({ id: d.id, ...d.data() }));
      render(jobs, open, true);
      onJobs(jobs);
    },
    onError,
  );
}

export function markCurrent(jobId) {
  for (const entry of document.querySelectorAll('#recent li')) {
    entry.classList.toggle('current', entry.dataset.jobId === jobId);
  }
}

export function clearRecent() {
  render([], () => {});
}

function render(jobs, open, loaded = false) {
  const entries = jobs.map((job) => {
    const entry = document.createElement('li');
    entry.dataset.jobId = job.id;
    const button = document.createElement('button');
    button.type = 'button';
    button.addEventListener('click', () => open(job.id));
    const dot = document.createElement('span');
    dot.className = `dot dot-${job.status}`;
    dot.title = job.status;
    const name = document.createElement('span');
    name.className = 'recent-name';
    name.textContent = displayName(job);
    const detail = document.createElement('span');
    detail.className = 'recent-detail';
    detail.textContent = [summary(job), when(job.createdAt)].filter(Boolean).join(' · ');
    button.append(dot, name, detail);
    entry.append(button);
    return entry;
  });
  const list = document.getElementById('recent');
  list.replaceChildren(...entries);
  list.dataset.loaded = String(loaded);
  document.getElementById('recent-empty').hidden = entries.length > 0;
  markCurrent(location.hash.replace(/^#job=/, ''));
}

/** The photo's name: the object's last part, less the `{jobId}-` the api put in front. */
export function displayName(job) {
  const name = (job.source?.name ?? job.id).split('/').pop();
  return name.startsWith(`${job.id}-`) ? name.slice(job.id.length + 1) : name;
}

function summary(job) {
  if (job.status === 'done') {
    const count = job.result?.items?.length ?? 0;
    const noun = job.kind === 'studio' ? 'studio shot' : 'garment';
    return `${count} ${noun}${count === 1 ? '' : 's'}`;
  }
  if (job.status === 'failed') return job.error?.code ?? 'failed';
  return `${job.progress ?? 0}%`;
}

function when(createdAt) {
  const time = millis(createdAt);
  if (!Number.isFinite(time)) return '';
  const seconds = Math.round((Date.now() - time) / 1000);
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return new Date(time).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
}
