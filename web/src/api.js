// The `api` function: signed upload URLs and signed URLs of a job's images.

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export function createApi(baseUrl, user) {
  async function call(method, path, body) {
    const token = await user().getIdToken();
    let response;
    try {
      response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${token}`,
          ...(body ? { 'Content-Type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch {
      throw new ApiError('network', 'The server cannot be reached. Check your connection.', 0);
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      // Every refusal is JSON {code, message}; anything else is a proxy or a crash.
      throw new ApiError(
        data?.code ?? 'http_error',
        data?.message ?? `The server answered HTTP ${response.status}.`,
        response.status,
      );
    }
    return data;
  }

  return {
    /** {jobId, uploadUrl, headers} for a PUT of the file; `studio`: studio shots of it. */
    requestUpload: (file, studio) =>
      call('POST', '/uploads', {
        filename: file.name,
        contentType: file.type,
        size: file.size,
        ...(studio ? { studio } : {}),
      }),
    /** Short-lived signed GET URLs of a finished job's outputs. */
    jobImages: (jobId) => call('GET', `/jobs/${encodeURIComponent(jobId)}/images`),
  };
}

const BROWSER_SETS = new Set(['host', 'content-length']);

/** PUT the file to the signed URL with exactly the headers it was signed with. */
export function putFile(url, headers, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [name, value] of Object.entries(headers ?? {})) {
      // The browser sends these itself (Host is signed too, and it is the URL's host).
      if (!BROWSER_SETS.has(name.toLowerCase())) xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve();
      } else {
        reject(new ApiError('upload_failed', `The upload was refused (HTTP ${xhr.status}).`, xhr.status));
      }
    };
    xhr.onerror = () => reject(new ApiError('upload_failed', 'The upload did not get through.', 0));
    xhr.send(blob);
  });
}
