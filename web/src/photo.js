// Shrink a photo in the browser before it travels: a 5 MB phone photo becomes about 300 KB.

export const MAX_EDGE = 1600;
const QUALITY = 0.85;
// Browsers often leave File.type empty for these; the server checks the bytes either way.
const TYPES_BY_EXTENSION = { heic: 'image/heic', heif: 'image/heif', avif: 'image/avif' };

/**
 * What to upload: `{file, original, resized, width, height}`. The original goes as it is when
 * this browser cannot decode it (HEIC outside Safari) or when re-encoding would not make it smaller.
 */
export async function preparePhoto(original) {
  const known = original.type && original.type !== 'application/octet-stream';
  const type = (known ? original.type : TYPES_BY_EXTENSION[extension(original.name)]) || original.type;
  const source = type === original.type ? original : new File([original], original.name, { type });
  let bitmap;
  try {
    bitmap = await createImageBitmap(source, { imageOrientation: 'from-image' });
  } catch {
    return { file: source, original, resized: false, reason: 'this browser cannot read it' };
  }
  try {
    const scale = Math.min(1, MAX_EDGE / Math.max(bitmap.width, bitmap.height));
    const width = Math.round(bitmap.width * scale);
    const height = Math.round(bitmap.height * scale);
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext('2d');
    // JPEG has no alpha: transparent pixels become white, not black.
    context.fillStyle = '#fff';
    context.fillRect(0, 0, width, height);
    context.imageSmoothingQuality = 'high';
    context.drawImage(bitmap, 0, 0, width, height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', QUALITY));
    if (!blob) {
      return { file: source, original, resized: false, reason: 'it could not be re-encoded' };
    }
    if (scale === 1 && type === 'image/jpeg' && blob.size >= original.size) {
      return { file: source, original, resized: false, reason: 'it is already small', width, height };
    }
    const name = `${original.name.replace(/\.[^.]*$/, '') || 'photo'}.jpg`;
    return { file: new File([blob], name, { type: 'image/jpeg' }), original, resized: true, width, height };
  } finally {
    bitmap.close();
  }
}

export function formatBytes(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1000 * 1000) return `${Math.round(bytes / 1000)} KB`;
  return `${(bytes / 1000 / 1000).toFixed(1)} MB`;
}

/** "4.8 MB → 310 KB", or why the original goes as it is. */
export function describeSizes(prepared) {
  const before = formatBytes(prepared.original.size);
  if (prepared.resized) {
    return `${before} → ${formatBytes(prepared.file.size)} (JPEG, ${prepared.width}×${prepared.height})`;
  }
  return `${before}, sent as it is (${prepared.reason})`;
}

function extension(name) {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot + 1).toLowerCase();
}
