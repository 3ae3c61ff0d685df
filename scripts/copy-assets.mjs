// Copies into dist/ what tsc does not emit: the simulator's recorded Kubernetes fixtures. The image
// build has no testing/ (.dockerignore): the image ships no test double, so there is nothing to copy.
import { cpSync, existsSync } from 'node:fs';

if (existsSync('testing/simulator/fixtures')) cpSync('testing/simulator/fixtures', 'dist/testing/simulator/fixtures', { recursive: true });
