#!/usr/bin/env node
// Launcher for the built package: the CLI is compiled to dist/ (npm run build).
import { exit, formatError, main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(exit, (error) => {
  process.stderr.write(formatError(error));
  return exit(1);
});
