// The one place that creates the Firebase clients and points them at the emulators in dev.
import { initializeApp } from 'firebase/app';
import { connectAuthEmulator, getAuth } from 'firebase/auth';
import { connectFirestoreEmulator, getFirestore } from 'firebase/firestore';

export function connect(config) {
  const app = initializeApp(config.firebase);
  const auth = getAuth(app);
  const db = getFirestore(app);
  const emulators = config.emulators;
  if (emulators?.auth) {
    connectAuthEmulator(auth, emulators.auth, { disableWarnings: true });
  }
  if (emulators?.firestore) {
    const [host, port] = splitHostPort(emulators.firestore);
    connectFirestoreEmulator(db, host, port);
  }
  return { auth, db };
}

function splitHostPort(address) {
  const url = new URL(address.includes('://') ? address : `http://${address}`);
  return [url.hostname, Number(url.port)];
}
