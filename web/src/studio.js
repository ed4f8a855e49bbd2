// The Studio view: a photo or a finished closet item becomes listing-ready shots and a caption,
// saved or shared through the Web Share API (download links where files cannot be shared).
import { displayName } from './recent.js';

const $ = (id) => document.getElementById(id);

// What Save / Share hands out: the image Files (fetched once the shots show), the signed URLs
// (download links when the files could not be fetched), and the object URLs made for links.
let shared = { files: [], urls: [], title: '', text: '', links: [] };

/** Wire the form; `submit({file} | {subject}, studio)` starts the job. */
export function setUpStudio(submit) {
  const form = $('studio-view');
  const syncSource = () => {
    const item = form.elements.source.value === 'item';
    $('studio-photo').hidden = item;
    $('studio-item-field').hidden = !item;
  };
  const syncStyle = () => {
    const scene = $('studio-style').value === 'scene';
    $('studio-prompt-field').hidden = !scene;
    $('studio-prompt').required = scene;
  };
  for (const radio of form.elements.source) radio.addEventListener('change', syncSource);
  $('studio-style').addEventListener('change', syncStyle);
  syncSource();
  syncStyle();
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const studio = studioRequest(form);
    if (!studio.aspects.length) return say('Pick at least one format.');
    if (form.elements.source.value === 'item') {
      const subject = $('studio-item').value;
      if (!subject) return say('Pick one of your finished closet items.');
      say('');
      submit({ subject }, { ...studio, subject });
    } else {
      const [file] = $('studio-file').files;
      if (!file) return say('Choose a photo first.');
      say('');
      submit({ file }, studio);
    }
  });
  $('share').addEventListener('click', share);
  $('copy-caption').addEventListener('click', copyCaption);
}

/** `{style, prompt?, aspects, context?, language?}` as the api takes it. */
function studioRequest(form) {
  const text = (id) => $(id).value.trim() || undefined;
  const style = $('studio-style').value;
  return {
    style,
    prompt: style === 'scene' ? text('studio-prompt') : undefined,
    aspects: [...form.querySelectorAll('input[name=aspect]:checked')].map((box) => box.value),
    context: text('studio-context'),
    language: text('studio-language'),
  };
}

function say(text) {
  $('studio-hint').textContent = text;
  $('studio-hint').hidden = !text;
}

/** The user's finished closet items, from the recent jobs, as choices of subject. */
export function setClosetItems(jobs) {
  const select = $('studio-item');
  const chosen = select.value;
  const options = jobs
    .filter((job) => (job.kind ?? 'closet') === 'closet' && job.status === 'done')
    .flatMap((job) =>
      (job.result?.items ?? []).map((item, index) => {
        const option = document.createElement('option');
        option.value = `${job.id}/items/${index}`;
        option.textContent = `${displayName(job)} · ${item.attributes?.category ?? item.label}`;
        return option;
      }),
    );
  select.replaceChildren(...options);
  if (options.some((option) => option.value === chosen)) select.value = chosen;
  $('studio-item-empty').hidden = options.length > 0;
}

export function clearShots() {
  for (const link of shared.links) URL.revokeObjectURL(link);
  shared = { files: [], urls: [], title: '', text: '', links: [] };
  $('shots').hidden = true;
  $('shot-list').replaceChildren();
  $('downloads').replaceChildren();
  $('downloads').hidden = true;
  $('share').disabled = true;
}

/** The shots (one per aspect) from the api's signed URLs, and the caption. */
export async function showShots(job, answer, isCurrent) {
  const caption = answer.caption;
  const items = answer.items ?? [];
  const figures = items.map((item) => {
    const figure = document.createElement('figure');
    figure.className = 'shot';
    const image = document.createElement('img');
    image.src = item.image.url;
    image.width = item.image.width;
    image.height = item.image.height;
    image.alt = caption?.altText ?? `Studio shot, ${item.label}`;
    const label = document.createElement('figcaption');
    label.textContent = item.label;
    figure.append(image, label);
    return figure;
  });
  $('shot-list').replaceChildren(...figures);
  showCaption(caption, answer.notes ?? []);
  $('shots').hidden = false;
  const name = (item, type) => `studio-${job.id}-${item.label.replace(':', 'x')}.${extension(type)}`;
  const urls = items.map((item) => ({ url: item.image.url, name: name(item, `image/${item.image.format}`) }));
  // The files to share: fetched once, so Save / Share runs inside the click (a user gesture).
  let files = [];
  try {
    files = await Promise.all(
      items.map(async (item) => {
        const response = await fetch(item.image.url);
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const blob = await response.blob();
        const type = blob.type || `image/${item.image.format}`;
        return new File([blob], name(item, type), { type });
      }),
    );
  } catch {
    files = []; // Save / Share then offers the signed URLs as links
  }
  if (!isCurrent()) return;
  shared = { ...shared, files, urls, title: caption?.title ?? 'Studio shots', text: captionText(caption) };
  $('share').disabled = items.length === 0;
}

function showCaption(caption, notes) {
  $('caption-title').textContent = caption?.title ?? 'No caption';
  $('caption-story').textContent = caption
    ? caption.story
    : 'No caption was written for these shots.';
  $('caption-tags').textContent = caption ? hashtags(caption).join(' ') : '';
  $('caption-notes').textContent = notes.join(' · ');
  $('caption-notes').hidden = notes.length === 0;
  $('copy-caption').disabled = !caption;
  $('copy-caption').textContent = 'Copy caption';
}

function hashtags(caption) {
  return (caption.hashtags ?? []).map((tag) => (tag.startsWith('#') ? tag : `#${tag}`));
}

function captionText(caption) {
  return caption ? [caption.title, caption.story, hashtags(caption).join(' ')].join('\n\n') : '';
}

async function share() {
  const { files, title, text } = shared;
  if (files.length && navigator.canShare?.({ files })) {
    try {
      await navigator.share({ files, title, text });
      return;
    } catch (error) {
      if (error.name === 'AbortError') return; // the person closed the share sheet
    }
  }
  showDownloads();
}

/** Where files cannot be shared: a download link per shot (object URLs, which `download` names
 * as said; the signed URLs when the files could not be fetched). */
function showDownloads() {
  for (const link of shared.links) URL.revokeObjectURL(link);
  shared.links = shared.files.map((file) => URL.createObjectURL(file));
  const targets = shared.files.length
    ? shared.files.map((file, index) => ({ url: shared.links[index], name: file.name }))
    : shared.urls;
  const links = targets.map(({ url, name }) => {
    const link = document.createElement('a');
    link.href = url;
    link.download = name;
    link.textContent = `Download ${name}`;
    return link;
  });
  $('downloads').replaceChildren(...links);
  $('downloads').hidden = false;
}

async function copyCaption() {
  const button = $('copy-caption');
  try {
    await navigator.clipboard.writeText(shared.text);
    button.textContent = 'Copied';
  } catch {
    button.textContent = 'Copy failed: select the text instead';
  }
}

function extension(type) {
  return { 'image/jpeg': 'jpg', 'image/avif': 'avif', 'image/png': 'png' }[type] ?? 'webp';
}
