// `npm ci && npm run build` writes bundle/, the folder Locust serves as its web UI (its
// template folder: index.html is rendered with Locust's template_args).
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react-swc';

export default defineConfig({
  plugins: [react()],
  base: './',
  build: { outDir: 'bundle', assetsDir: 'assets', emptyOutDir: true, chunkSizeWarningLimit: 2000 },
});
