// Sign in, upload a photo through a signed URL, follow its job live, show the garments (or,
// in the Studio view, the studio shots of a photo or a closet item).
import {
  isSignInWithEmailLink,
  onAuthStateChanged,
  sendSignInLinkToEmail,
  signInAnonymously,
  signInWithEmailLink,
  signOut,
} from 'firebase/auth';
import { doc, onSnapshot } from 'firebase/firestore';

import { createApi, putFile } from './api.js';
import { loadConfig } from './config.js';
import { connect } from './firebase.js';
import { clearJob, renderJob, showError, showGarments, showProgress, showStatus } from './job.js';
import { describeSizes, preparePhoto } from './photo.js';
import { clearRecent, displayName, listenRecent, markCurrent } from './recent.js';
import { clearShots, setClosetItems, setUpStudio, showShots } from './studio.js';

const $ = (id) => document.getElementById(id);
const EMAIL_KEY = 'closet.emailForSignIn';
// Our upload's job document may not exist yet when we start listening (ingest creates it), and
// the rules may refuse to read a missing document: try again for this long.
const WAIT_FOR_JOB_MS = 60_000;
const RETRY_MS = 1000;

let auth;
let db;
let api;
let stopRecent = () => {};
let current = { jobId: null, stop: () => {} };

main().catch((error) => notice(error.message));

async function main() {
  const config = await loadConfig();
  ({ auth, db } = connect(config));
  api = createApi(config.apiUrl, () => auth.currentUser);

  $('guest').addEventListener('click', () => signInAnonymously(auth).catch((e) => notice(e.message)));
  $('email-link').addEventListener('submit', sendLink);
  $('sign-out').addEventListener('click', () => signOut(auth));
  $('file').addEventListener('change', (event) => {
    const [file] = event.target.files;
    event.target.value = '';
    if (file) upload(file);
  });
  setUpDrop();
  setUpTabs();
  setUpStudio(({ file, subject }, studio) => (file ? upload(file, studio) : sendRequest(subject, studio)));
  window.addEventListener('hashchange', () => {
    const jobId = hashJob();
    if (auth.currentUser && jobId && jobId !== current.jobId) openJob(jobId);
  });

  if (isSignInWithEmailLink(auth, location.href)) {
    await finishEmailLink();
  }
  onAuthStateChanged(auth, signedIn);
}

function signedIn(user) {
  stopRecent();
  current.stop();
  current = { jobId: null, stop: () => {} };
  $('sign-in').hidden = Boolean(user);
  $('app').hidden = !user;
  $('account').hidden = !user;
  $('job').hidden = true;
  clearRecent();
  if (!user) return;
  $('account-name').textContent = user.isAnonymous ? `Guest ${user.uid.slice(0, 6)}` : user.email;
  $('account').dataset.uid = user.uid;
  stopRecent = listenRecent(
    db,
    user.uid,
    (jobId) => (location.hash = `job=${jobId}`),
    (error) => notice(`Your recent jobs cannot be listed: ${error.message}`),
    setClosetItems,
  );
  const jobId = hashJob();
  if (jobId) openJob(jobId);
}

async function sendLink(event) {
  event.preventDefault();
  const email = $('email').value.trim();
  try {
    await sendSignInLinkToEmail(auth, email, { url: location.href.split('#')[0], handleCodeInApp: true });
    localStorage.setItem(EMAIL_KEY, email);
    notice(`A sign-in link is on its way to ${email}.`, 'info');
  } catch (error) {
    notice(error.message);
  }
}

async function finishEmailLink() {
  const email = localStorage.getItem(EMAIL_KEY) ?? window.prompt('Your email, to finish signing in');
  if (!email) return;
  try {
    await signInWithEmailLink(auth, email, location.href);
    localStorage.removeItem(EMAIL_KEY);
    history.replaceState(null, '', location.pathname);
  } catch (error) {
    notice(error.message);
  }
}

function setUpDrop() {
  const zone = $('drop');
  for (const type of ['dragenter', 'dragover']) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add('over');
    });
  }
  for (const type of ['dragleave', 'drop']) {
    zone.addEventListener(type, () => zone.classList.remove('over'));
  }
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    const [file] = event.dataTransfer.files;
    if (file) upload(file);
  });
}

function setUpTabs() {
  const tabs = [$('tab-closet'), $('tab-studio')];
  for (const tab of tabs) {
    tab.addEventListener('click', () => {
      for (const other of tabs) {
        other.setAttribute('aria-selected', String(other === tab));
        $(other.getAttribute('aria-controls')).hidden = other !== tab;
      }
    });
  }
}

/** A photo, shrunk in the browser, then sent; `studio`: studio shots of it. */
async function upload(original, studio) {
  notice('');
  startJobCard(original.name);
  showProgress(0, 'Preparing the photo');
  const prepared = await preparePhoto(original);
  $('sizes').textContent = describeSizes(prepared);
  if (prepared.resized) {
    const preview = $('preview');
    preview.src = URL.createObjectURL(prepared.file);
    preview.hidden = false;
  }
  await send(prepared.file, studio);
}

/** Studio shots of a closet item: no photo travels, the upload is the request itself. */
async function sendRequest(subject, studio) {
  notice('');
  startJobCard(`Studio: ${$('studio-item').selectedOptions[0]?.textContent ?? subject}`);
  const body = JSON.stringify(studio);
  await send(new File([body], 'request.json', { type: 'application/json' }), studio);
}

/** Ask for a signed URL, follow the job it names, PUT the file. */
async function send(file, studio) {
  let ticket;
  try {
    ticket = await api.requestUpload(file, studio);
  } catch (error) {
    return failBeforeJob(error);
  }
  // Listen first: the job id is ours before a byte is sent, so no update is missed.
  listenJob(ticket.jobId, { created: false });
  history.replaceState(null, '', `#job=${ticket.jobId}`);
  $('upload').hidden = false;
  try {
    await putFile(ticket.uploadUrl, ticket.headers, file, (fraction) => {
      const percent = Math.round(fraction * 100);
      $('upload-bar').style.width = `${percent}%`;
      $('upload-pct').textContent = `${percent}%`;
    });
  } catch (error) {
    current.stop();
    return failBeforeJob(error);
  }
  showProgress(0, 'Uploaded: waiting for the pipeline');
}

function failBeforeJob(error) {
  showStatus('failed');
  showProgress(0, 'Not uploaded');
  showError(error.code ?? 'upload_failed', error.message);
}

function startJobCard(name) {
  clearJob();
  $('job').hidden = false;
  $('job-name').textContent = name;
  $('sizes').textContent = '';
  $('job-id').textContent = '';
  $('preview').hidden = true;
  $('preview').removeAttribute('src');
  clearShots();
}

function openJob(jobId) {
  startJobCard('Photo');
  listenJob(jobId, { created: true });
}

/** Follow `jobs/{jobId}`; `created: false` while our own upload has yet to create it. */
function listenJob(jobId, { created }) {
  current.stop();
  let unsubscribe = () => {};
  let timer = 0;
  const state = {
    jobId,
    seen: false,
    images: false,
    since: Date.now(),
    stop: () => {
      clearTimeout(timer);
      unsubscribe();
    },
  };
  current = state;
  $('job-id').textContent = jobId;
  markCurrent(jobId);

  const subscribe = () => {
    unsubscribe = onSnapshot(
      doc(db, 'jobs', jobId),
      (snapshot) => {
        if (current !== state || !snapshot.exists()) return;
        const job = snapshot.data();
        if (!state.seen) {
          state.seen = true;
          if ($('job-name').textContent === 'Photo' && job.source?.name) {
            $('job-name').textContent = displayName({ id: jobId, ...job });
          }
        }
        renderJob(job);
        if (job.status === 'done' && !state.images) {
          state.images = true;
          loadImages(state, jobId, job);
        }
      },
      (error) => {
        if (current !== state) return;
        const waiting = !created && !state.seen && Date.now() - state.since < WAIT_FOR_JOB_MS;
        if (error.code === 'permission-denied' && waiting) {
          timer = setTimeout(() => current === state && subscribe(), RETRY_MS);
          return;
        }
        showStatus('failed');
        // The rules' own words name rule lines, which mean nothing to the person reading.
        if (error.code === 'permission-denied') showError('permission_denied');
        else showError('listen_failed', error.message);
      },
    );
  };
  subscribe();
}

async function loadImages(state, jobId, job) {
  try {
    const answer = await api.jobImages(jobId);
    if (current !== state) return;
    if (job.kind === 'studio') await showShots({ id: jobId, ...job }, answer, () => current === state);
    else showGarments(job, signedUrls(answer));
  } catch (error) {
    if (current === state) showError(error.code ?? 'images_failed', error.message);
  }
}

/** The signed URL of each item's image, in the order of the job's `result.items`. */
function signedUrls(answer) {
  return (answer.items ?? []).map((item) => item.image?.url ?? '');
}

function hashJob() {
  const match = /^#job=([\w-]+)$/.exec(location.hash);
  return match ? match[1] : null;
}

function notice(text, kind = 'error') {
  const element = $('notice');
  element.textContent = text;
  element.dataset.kind = kind;
  element.hidden = !text;
}
