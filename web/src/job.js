// Renders one job document (`jobs/{jobId}`, see DESIGN.md) into the job card.

const $ = (id) => document.getElementById(id);

// The stages of each pipeline in order, so the ones still to come show too.
const PIPELINES = {
  closet: ['ingest', 'remove_background', 'segment', 'expand', 'finalize'],
  tryon: ['tryon_prepare', 'tryon_generate', 'finalize'],
  studio: ['studio_prepare', 'upscale', 'backdrop', 'caption', 'compose'],
};
const STAGE_NAMES = {
  ingest: 'Check photo',
  remove_background: 'Background',
  segment: 'Garments',
  expand: 'Complete & tag',
  finalize: 'Save images',
  tryon_prepare: 'Check the photos',
  tryon_generate: 'Dress the person',
  studio_prepare: 'Cut out',
  upscale: 'Sharpen',
  backdrop: 'Backdrop',
  caption: 'Caption',
  compose: 'Compose',
};
// What each error code means to the person who uploaded (codes: DESIGN.md, common/errors.py).
const ERROR_WORDS = {
  invalid_image: 'This file is not a readable image.',
  unsupported_format: 'This image format is not supported. Try JPEG, PNG, WebP, HEIC or AVIF.',
  image_too_large: 'This file is too large.',
  too_many_pixels: 'This image has too many pixels.',
  image_too_small: 'This image is too small to work with.',
  no_garment_found: 'No garment was found in this photo.',
  no_subject_found: 'Nothing stands out in this photo to put in the studio.',
  item_not_found: 'This closet item is not one of your finished ones.',
  request_too_large: 'The request is too large.',
  invalid_request: 'The upload was missing something it needs.',
  backend_unavailable: 'A model could not be reached. Please try again later.',
  backend_refused: 'A model refused this photo.',
  stage_failed: 'Something kept failing while processing this photo.',
  timeout: 'This job stopped making progress.',
  permission_denied: 'This job is not yours, or it does not exist.',
  listen_failed: 'The live view of this job stopped.',
};

export function errorWords(code) {
  return ERROR_WORDS[code] ?? 'Something went wrong.';
}

export function showStatus(status) {
  const element = $('job-status');
  element.dataset.status = status;
  element.textContent = status;
}

export function showProgress(percent, message) {
  $('progress-bar').style.width = `${percent}%`;
  $('progress-pct').textContent = `${percent}%`;
  $('stage-message').textContent = message;
}

export function showError(code, message) {
  const box = $('error');
  box.hidden = false;
  box.dataset.code = code;
  $('error-title').textContent = errorWords(code);
  const detail = message ? `${message[0].toUpperCase()}${message.slice(1)}` : '';
  $('error-message').textContent = detail ? `${detail} (${code})` : `(${code})`;
}

export function clearJob() {
  showStatus('queued');
  showProgress(0, 'Waiting for the upload');
  $('stages').replaceChildren();
  $('garments').replaceChildren();
  $('error').hidden = true;
  $('upload').hidden = true;
}

/** The job document as it is now: status, progress, stages. Garments come from `showGarments`. */
export function renderJob(job) {
  showStatus(job.status);
  const message = job.status === 'done' ? 'Done' : job.message;
  showProgress(job.progress ?? 0, job.cacheHit && job.status === 'done' ? 'Done (seen before)' : message);
  renderStages(job);
  if (job.status === 'failed' && job.error) {
    showError(job.error.code, job.error.message);
  }
}

function renderStages(job) {
  const recorded = job.stages ?? {};
  const names = [...(PIPELINES[job.kind ?? 'closet'] ?? [])];
  const started = Object.keys(recorded).sort((a, b) => millis(recorded[a].startedAt) - millis(recorded[b].startedAt));
  for (const name of started) if (!names.includes(name)) names.push(name);
  const rows = names.map((name) => {
    const record = recorded[name];
    const state = record?.status ?? (job.status === 'failed' ? 'not-run' : 'pending');
    const row = document.createElement('li');
    row.className = `stage stage-${state}`;
    row.dataset.stage = name;
    const label = document.createElement('span');
    label.className = 'stage-name';
    label.textContent = STAGE_NAMES[name] ?? name;
    const detail = document.createElement('span');
    detail.className = 'stage-time';
    detail.textContent = stageDetail(record, state);
    if (record?.reason) detail.title = record.reason;
    row.append(label, detail);
    return row;
  });
  $('stages').replaceChildren(...rows);
}

function stageDetail(record, state) {
  if (!record) return state === 'pending' ? '' : 'not run';
  if (record.status === 'skipped') return `skipped${record.reason ? `: ${record.reason}` : ''}`;
  if (record.status === 'running') return record.attempts > 1 ? `running (try ${record.attempts})` : 'running';
  const ms = record.ms ?? (millis(record.endedAt) - millis(record.startedAt));
  const time = Number.isFinite(ms) ? formatMs(ms) : '';
  return record.status === 'failed' ? `failed ${time}`.trim() : time;
}

export function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function millis(value) {
  if (!value) return NaN;
  if (typeof value.toMillis === 'function') return value.toMillis();
  return new Date(value).getTime();
}

/** Each garment as an <img> with its label and attributes; `urls[i]` is item i's signed URL. */
export function showGarments(job, urls) {
  const cards = (job.result?.items ?? []).map((item, index) => {
    const card = document.createElement('figure');
    card.className = 'garment';
    const image = document.createElement('img');
    image.alt = item.label;
    image.width = item.image.width;
    image.height = item.image.height;
    image.src = urls[index] ?? '';
    image.decoding = 'async';
    const caption = document.createElement('figcaption');
    const title = document.createElement('strong');
    title.textContent = item.attributes?.category ?? item.label;
    caption.append(title);
    if (item.attributes?.category && item.attributes.category !== item.label) {
      caption.append(tag(item.label, 'tag-label'));
    }
    const attributes = item.attributes;
    if (attributes) {
      const colours = document.createElement('div');
      colours.className = 'swatches';
      for (const colour of attributes.colors ?? []) {
        const swatch = tag(colour, 'swatch');
        swatch.style.setProperty('--swatch', cssColour(colour));
        colours.append(swatch);
      }
      caption.append(colours);
      const details = [attributes.pattern, ...(attributes.seasons ?? [])].filter(Boolean);
      caption.append(...details.map((detail) => tag(detail)));
    } else {
      caption.append(tag(`${item.image.width}×${item.image.height}`, 'tag-muted'));
    }
    card.append(image, caption);
    return card;
  });
  $('garments').replaceChildren(...cards);
}

function tag(text, extra = '') {
  const element = document.createElement('span');
  element.className = `tag ${extra}`.trim();
  element.textContent = text;
  return element;
}

function cssColour(name) {
  const probe = new Option().style;
  probe.color = name.toLowerCase().replace(/\s+/g, '');
  return probe.color || 'transparent';
}
