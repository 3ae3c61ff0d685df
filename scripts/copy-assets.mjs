// Copies into dist/ what tsc does not emit: the simulator's recorded Kubernetes fixtures.
import { cpSync } from 'node:fs';

cpSync('plugins/kubernetes/simulator/fixtures', 'dist/plugins/kubernetes/simulator/fixtures', { recursive: true });
