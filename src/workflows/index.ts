/** Workflow entry points, bundled by the worker. Only deterministic code below this folder. */
export { sweepWorkflow } from './sweep';
export { datasetWorkflow } from './dataset';
export { metricsWorkflow } from './metrics';
export { jobWorkflow } from './job';
export { studentWorkflow } from './student';
export { anchorWorkflow } from './anchor';
