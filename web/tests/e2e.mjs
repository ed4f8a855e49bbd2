// The web app in a real browser against `closet dev` (tests/integration/test_web.py runs it).
//
// Environment: CLOSET_PAGE_URL (the page `closet dev` serves), CLOSET_SAMPLE (a photo),
// CLOSET_SAMPLE_HEIC (a photo in HEIC, which Chromium cannot decode),
// CLOSET_SCREENSHOT (where the finished job's picture goes), CLOSET_STUDIO_SCREENSHOT (the studio's), CHROMIUM (default /usr/bin/chromium),
// CLOSET_E2E_TIMEOUT_S (how long a job may take; generous: the machine may be loaded);
// CLOSET_AUTH_URL and CLOSET_AUTH_PROJECT (the Auth emulator, whose outbox the email link is read from),
// CLOSET_CAPTION_TITLE (the title the fake Gemini gives every studio caption);
// CLOSET_HARNESS_STDIN=1: the harness (test_web.py) breaks the fake's captions when this script
// prints "harness: break captions" and answers on stdin when it has (without it, that step is skipped).
import assert from 'node:assert/strict';
import process from 'node:process';
import readline from 'node:readline';

import { chromium } from 'playwright-core';

const PAGE_URL = required('CLOSET_PAGE_URL');
const AUTH_URL = required('CLOSET_AUTH_URL');
const AUTH_PROJECT = required('CLOSET_AUTH_PROJECT');
const SAMPLE = required('CLOSET_SAMPLE');
const SAMPLE_HEIC = required('CLOSET_SAMPLE_HEIC');
const SCREENSHOT = required('CLOSET_SCREENSHOT');
const CAPTION_TITLE = required('CLOSET_CAPTION_TITLE');
const STUDIO_SCREENSHOT = required('CLOSET_STUDIO_SCREENSHOT');
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const JOB_TIMEOUT_MS = Number(process.env.CLOSET_E2E_TIMEOUT_S || 240) * 1000;
const STEP_TIMEOUT_MS = 60_000;
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

function ok(text) {
  console.log(`ok - ${text}`);
}

const harness = process.env.CLOSET_HARNESS_STDIN === '1' ? readline.createInterface({ input: process.stdin }) : null;
const answers = harness?.[Symbol.asyncIterator]();

/** Ask the harness to do `what` and wait until it says done; false without a harness. */
async function askHarness(what) {
  if (!answers) return false;
  console.log(`harness: ${what}`);
  const { value, done } = await answers.next();
  assert.ok(!done && value.trim() === 'done', `the harness answered ${done ? 'nothing' : value}`);
  return true;
}

/**
 * The page's Web Share and clipboard, replaced by recorders: `window.closetShares` gets what
 * `navigator.share` was called with (each file's name, type, size and first bytes),
 * `window.closetClipboard` what was copied; `navigator.canShare` answers `window.closetCanShare`.
 */
function recordSharing() {
  window.closetShares = [];
  window.closetClipboard = [];
  window.closetCanShare = true;
  const define = (name, value) => Object.defineProperty(navigator, name, { configurable: true, value });
  define('canShare', (data) => window.closetCanShare && Array.isArray(data?.files));
  define('share', async (data) => {
    const files = await Promise.all(
      (data.files ?? []).map(async (file) => ({
        isFile: file instanceof File,
        name: file.name,
        type: file.type,
        size: file.size,
        magic: new TextDecoder().decode((await file.arrayBuffer()).slice(0, 4)),
      })),
    );
    window.closetShares.push({ title: data.title, text: data.text, files });
  });
  define('clipboard', { writeText: async (text) => void window.closetClipboard.push(text) });
}

/** A page in a fresh context (a new browser profile: a new anonymous user), with its logs kept. */
async function openPage(browser, logs, who) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await context.addInitScript(recordSharing);
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('console', (message) => logs.push(`${who} console.${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => logs.push(`${who} page error: ${error.message}`));
  page.on('requestfailed', (request) =>
    logs.push(`${who} request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`),
  );
  return { context, page };
}

async function signIn(page) {
  await page.goto(PAGE_URL);
  await page.click('#guest');
  await page.waitForSelector('#app', { state: 'visible' });
  await page.waitForSelector('#recent[data-loaded="true"]', { state: 'attached' });
  return page.getAttribute('#account', 'data-uid');
}

/** Every value `data-status` of the job takes from now on, in order. */
async function recordStatuses(page) {
  await page.evaluate(() => {
    const element = document.getElementById('job-status');
    window.closetStatuses = [];
    new MutationObserver(() => {
      const status = element.dataset.status;
      if (window.closetStatuses.at(-1) !== status) window.closetStatuses.push(status);
    }).observe(element, { attributes: true, attributeFilter: ['data-status'] });
  });
}

async function finalStatus(page) {
  const handle = await page.waitForFunction(
    () => {
      const status = document.getElementById('job-status').dataset.status;
      return ['done', 'failed'].includes(status) && status;
    },
    null,
    { timeout: JOB_TIMEOUT_MS, polling: 100 },
  );
  return handle.jsonValue();
}

async function run(browser, logs) {
  // -- the first user signs in and uploads the sample photo ---------------------------------
  const first = await openPage(browser, logs, 'user 1');
  const page = first.page;
  const uid = await signIn(page);
  assert.ok(uid, 'the signed-in page names its user');
  ok(`signed in anonymously as ${uid}`);
  assert.equal(await page.locator('#closet-view input[type=file]').count(), 1, 'one file input');

  await recordStatuses(page);
  await page.setInputFiles('#file', SAMPLE);
  await page.waitForFunction(() => /^#job=/.test(location.hash));
  const jobId = (await page.evaluate(() => location.hash)).slice('#job='.length);
  ok(`upload ticket for job ${jobId}`);

  const status = await finalStatus(page);
  const error = (await page.locator('#error').isVisible()) ? await page.textContent('#error') : '';
  assert.equal(status, 'done', `the job finished ${status}: ${error}`);
  const statuses = await page.evaluate(() => window.closetStatuses);
  assert.ok(statuses.includes('running'), `status went through running: ${statuses}`);
  assert.ok(statuses.indexOf('running') < statuses.indexOf('done'), `running before done: ${statuses}`);
  ok(`status went ${statuses.join(' → ')}`);

  assert.equal(await page.textContent('#upload-pct'), '100%', 'the upload bar reached 100%');
  assert.match(await page.textContent('#sizes'), /\d+ (B|KB|MB)/, 'the sizes are shown');
  assert.equal(await page.textContent('#progress-pct'), '100%');
  const times = await page.locator('#stages li.stage-done .stage-time').allTextContents();
  assert.ok(times.length >= 1 && times.every((t) => /\d+(\.\d)? (ms|s)$/.test(t)), `stage times: ${times}`);
  ok(`stage times ${times.join(', ')}`);

  // Every garment is an <img> that actually loaded from its signed URL.
  await page.waitForFunction(
    () => {
      const images = [...document.querySelectorAll('#garments img')];
      return images.length > 0 && images.every((image) => image.complete && image.naturalWidth > 0);
    },
    null,
    { timeout: STEP_TIMEOUT_MS },
  );
  const garments = await page.$$eval('#garments figure', (figures) =>
    figures.map((f) => ({ label: f.querySelector('img').alt, width: f.querySelector('img').naturalWidth })),
  );
  const items = await page.$$eval('#garments img', (images) => images.length);
  assert.equal(items, garments.length);
  ok(`garments loaded: ${garments.map((g) => `${g.label} (${g.width} px)`).join(', ')}`);

  await page.waitForSelector(`#recent li[data-job-id="${jobId}"] .dot-done`);
  ok('the job is in the recent list, done');
  await page.screenshot({ path: SCREENSHOT });
  ok(`screenshot saved to ${SCREENSHOT}`);

  // -- an iPhone photo: Chromium cannot decode HEIC, so the original goes and ingest reads it --
  await page.setInputFiles('#file', SAMPLE_HEIC);
  await page.waitForFunction((previous) => location.hash !== `#job=${previous}`, jobId);
  const heicJob = (await page.evaluate(() => location.hash)).slice('#job='.length);
  assert.match(await page.textContent('#sizes'), /sent as it is \(this browser cannot read it\)/);
  const heicStatus = await finalStatus(page);
  const heicError = heicStatus === 'failed' ? await page.textContent('#error') : '';
  assert.equal(heicStatus, 'done', `the HEIC job finished ${heicStatus}: ${heicError}`);
  await page.waitForFunction(
    () => [...document.querySelectorAll('#garments img')].some((image) => image.naturalWidth > 0),
    null,
    { timeout: STEP_TIMEOUT_MS },
  );
  ok(`the HEIC photo went as it is (${await page.textContent('#sizes')}) and job ${heicJob} is done`);

  // -- a text file named .jpg: the browser cannot decode it, so it goes as it is ------------
  await page.setInputFiles('#file', {
    name: 'not-a-photo.jpg',
    mimeType: 'image/jpeg',
    buffer: Buffer.from('This is a text file, not a JPEG.\n'.repeat(20)),
  });
  await page.waitForFunction((previous) => location.hash !== `#job=${previous}`, heicJob);
  const badJob = (await page.evaluate(() => location.hash)).slice('#job='.length);
  assert.equal(await finalStatus(page), 'failed');
  assert.equal(await page.getAttribute('#error', 'data-code'), 'invalid_image');
  const words = await page.textContent('#error');
  assert.match(words, /not a readable image/);
  ok(`the text file failed with invalid_image: "${words.trim().replace(/\s+/g, ' ')}"`);
  await page.waitForSelector(`#recent li[data-job-id="${badJob}"] .dot-failed`);
  assert.equal(await page.locator('#recent li').count(), 3, 'the first user lists their three jobs');

  await studio(page, badJob, jobId);

  // -- a second user sees none of it -----------------------------------------------------------
  const second = await openPage(browser, logs, 'user 2');
  const other = await signIn(second.page);
  assert.ok(other && other !== uid, 'the second context is another user');
  assert.equal(await second.page.locator('#recent li').count(), 0, 'no job of the first user is listed');
  assert.equal(await second.page.isVisible('#notice'), false, 'listing their own jobs works');
  ok(`the second user (${other}) lists no jobs`);

  await second.page.evaluate((id) => (location.hash = `job=${id}`), jobId);
  assert.equal(await finalStatus(second.page), 'failed');
  assert.equal(await second.page.getAttribute('#error', 'data-code'), 'permission_denied');
  assert.equal(await second.page.locator('#garments img').count(), 0);
  ok('the second user cannot open the first user\'s job');

  await second.context.close();
  await first.context.close();

  // -- email link: the emulator keeps the mail; following its link signs the user in ---------
  const third = await openPage(browser, logs, 'user 3');
  await third.page.goto(PAGE_URL);
  await third.page.fill('#email', 'ann@example.com');
  await third.page.click('#email-link button');
  await third.page.waitForSelector('#notice[data-kind="info"]');
  const outbox = await fetch(`${AUTH_URL}/emulator/v1/projects/${AUTH_PROJECT}/oobCodes`);
  const mail = (await outbox.json()).oobCodes.findLast((code) => code.email === 'ann@example.com');
  assert.ok(mail?.oobLink, 'the Auth emulator holds the sign-in link');
  await third.page.goto(mail.oobLink);
  await third.page.waitForSelector('#app', { state: 'visible' });
  assert.equal(await third.page.textContent('#account-name'), 'ann@example.com');
  ok('signed in through the email link');
  await third.context.close();
}

/** The job the page moved to after `previous`, once it is done, with its shots loaded. */
async function studioJobDone(page, previous, count) {
  await page.waitForFunction((before) => location.hash !== `#job=${before}`, previous);
  const id = (await page.evaluate(() => location.hash)).slice('#job='.length);
  const status = await finalStatus(page);
  const error = status === 'failed' ? await page.textContent('#error') : '';
  assert.equal(status, 'done', `the studio job ${id} finished ${status}: ${error}`);
  await page.waitForFunction(
    (n) => {
      const images = [...document.querySelectorAll('#shot-list img')];
      const loaded = images.length === n && images.every((image) => image.complete && image.naturalWidth > 0);
      return loaded && !document.getElementById('share').disabled;
    },
    count,
    { timeout: STEP_TIMEOUT_MS },
  );
  return id;
}

/** Studio shots of a photo, shared (and downloaded where files cannot be shared), then of an item. */
async function studio(page, previous, closetJob) {
  await page.click('#tab-studio');
  assert.equal(await page.getAttribute('#tab-studio', 'aria-selected'), 'true');
  assert.ok(await page.isHidden('#closet-view'), 'the closet view makes room');
  await page.setInputFiles('#studio-file', SAMPLE);
  await page.selectOption('#studio-style', 'gradient');
  await page.uncheck('input[name=aspect][value="9:16"]');
  await page.fill('#studio-context', 'size M, organic cotton');
  await page.click('#studio-submit');
  const shotJob = await studioJobDone(page, previous, 2);
  const labels = await page.locator('#shot-list figcaption').allTextContents();
  assert.deepEqual(labels, ['1:1', '4:5']);
  ok(`studio job ${shotJob} done: shots ${labels.join(', ')}`);

  // The caption, and its copy button.
  assert.equal(await page.textContent('#caption-title'), CAPTION_TITLE);
  await page.click('#copy-caption');
  await page.waitForFunction(() => window.closetClipboard.length === 1);
  const copied = await page.evaluate(() => window.closetClipboard[0]);
  assert.ok(copied.startsWith(CAPTION_TITLE) && /#\w+/.test(copied), `copied: ${copied}`);
  ok('the caption is shown and copied');

  // Save / Share: the image files go to the share sheet.
  await page.click('#share');
  await page.waitForFunction(() => window.closetShares.length === 1);
  const shared = await page.evaluate(() => window.closetShares[0]);
  assert.equal(shared.files.length, 2, 'one file a shot');
  for (const file of shared.files) {
    assert.ok(file.isFile && file.size > 0, `a non-empty File: ${JSON.stringify(file)}`);
    assert.equal(file.type, 'image/webp');
    assert.equal(file.magic, 'RIFF', `the bytes of a WebP: ${file.name}`);
  }
  assert.equal(shared.title, CAPTION_TITLE);
  assert.ok(await page.isHidden('#downloads'), 'no download links when files can be shared');
  ok(`shared ${shared.files.map((file) => `${file.name} (${file.size} B)`).join(', ')}`);

  // A browser that cannot share files gets a download link for each shot.
  await page.evaluate(() => (window.closetCanShare = false));
  await page.click('#share');
  await page.waitForSelector('#downloads a[download]');
  const downloads = await page.$$eval('#downloads a[download]', (links) =>
    Promise.all(
      links.map(async (link) => {
        const blob = await (await fetch(link.href)).blob();
        return { name: link.download, type: blob.type, size: blob.size };
      }),
    ),
  );
  assert.equal(downloads.length, 2);
  assert.ok(downloads.every((d) => d.type === 'image/webp' && d.size > 0 && d.name.endsWith('.webp')));
  assert.equal(await page.evaluate(() => window.closetShares.length), 1, 'share was not called again');
  ok(`download links: ${downloads.map((d) => d.name).join(', ')}`);
  await page.screenshot({ path: STUDIO_SCREENSHOT, fullPage: true });

  // A closet item of this user's, in the studio: only the request travels. The caption model
  // now answers something unusable: the shots come without a caption, and the page says so.
  const noCaption = await askHarness('break captions');
  await page.check('input[name=source][value=item]');
  const subject = `${closetJob}/items/0`;
  await page.selectOption('#studio-item', subject);
  await page.uncheck('input[name=aspect][value="4:5"]');
  await page.click('#studio-submit');
  const itemJob = await studioJobDone(page, shotJob, 1);
  assert.deepEqual(await page.locator('#shot-list figcaption').allTextContents(), ['1:1']);
  ok(`studio job ${itemJob} of closet item ${subject} done`);
  if (noCaption) {
    assert.equal(await page.textContent('#caption-title'), 'No caption');
    assert.match(await page.textContent('#caption-notes'), /no caption: .*caption/i);
    assert.ok(await page.isDisabled('#copy-caption'), 'nothing to copy');
    ok(`without a caption the page says so: "${await page.textContent('#caption-notes')}"`);
  } else {
    ok('(no harness: the shots without a caption are not checked)');
  }
  await page.click('#tab-closet');
}

const logs = [];
const browser = await chromium.launch({ executablePath: EXECUTABLE, args: ARGS });
try {
  await run(browser, logs);
  console.log('web app: every check passed');
} catch (error) {
  console.error(`not ok - ${error.stack ?? error}`);
  console.error(`--- browser log (${logs.length} lines) ---\n${logs.join('\n')}`);
  process.exitCode = 1;
} finally {
  harness?.close();
  await browser.close();
}
