import { defineConfig } from 'vite';

// `base: './'` keeps every asset URL relative, so `dist/` works from any folder of any host;
// `config.json` is not bundled: the host serves it next to index.html (see README, "Web app").
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1024,
  },
});
