/** Statistics and the comparator, verify (before/after), threshold search. Pure functions over ProbeResult arrays. */
export { computeCells, cellKey, stageStats, ackedBodyOffset, sinkBodyBytes } from './cells.js';
export type { CellStats, StageStats, StallOffset } from './cells.js';
export { compare, findings, verdict, stagePhrase, approxSize, sizeRange } from './compare.js';
export type { CompareOptions, CompareResult } from './compare.js';
export { RULES, buildContext, type Rule, type Context as CompareContext } from './findings/index.js';
export { verifyRuns, evaluateThresholds, describeCell } from './verify.js';
export type { CellVerdict, CellComparison, RunSide, VerifyResult, VerifyOptions, ThresholdResult } from './verify.js';
export { bisect, bracketEvidence, BisectError } from './bisect.js';
export type { BisectEvidence, BisectOptions, BisectResult, BisectStep, RunStep, StepVerdict } from './bisect.js';
export { adjustP, testDifference, describeP, TEST_NAME, CORRECTION } from './policy.js';
export type { TestedDifference } from './policy.js';
export { readResults, parseResults, ResultsInputError, type SkippedLine } from './io.js';
export { ResultLineSchema, checkResultLine } from './result-schema.js';
export type { ResultsInputCode } from './io.js';
export {
  wilson,
  fisherExact,
  percentile,
  median,
  mannWhitney,
  probesForSignificance,
  probesPerCellForSignificance,
  formatP,
  formatPct,
  Z95,
} from './stats.js';
