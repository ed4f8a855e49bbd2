// The runtime configuration, served next to index.html, so one build serves every deployment.
//
// {
//   "apiUrl": "https://...",                      the `api` function
//   "firebase": {"projectId", "apiKey", "authDomain"?},
//   "emulators": {"auth": "http://127.0.0.1:9099", "firestore": "127.0.0.1:8080"} | null
// }

export async function loadConfig() {
  const response = await fetch(new URL('config.json', document.baseURI), { cache: 'no-store' });
  if (!response.ok) {
    throw new Error(`config.json could not be loaded (HTTP ${response.status})`);
  }
  const config = await response.json();
  for (const key of ['apiUrl', 'firebase']) {
    if (!config[key]) throw new Error(`config.json has no "${key}"`);
  }
  if (!config.firebase.projectId || !config.firebase.apiKey) {
    throw new Error('config.json: "firebase" needs "projectId" and "apiKey"');
  }
  return { ...config, apiUrl: config.apiUrl.replace(/\/+$/, ''), emulators: config.emulators ?? null };
}
