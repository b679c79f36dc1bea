/**
 * The comparator's rules: one pure function per finding kind over the shared context. A new rule is one new file
 * and one line in RULES. Order does not matter for the result (findings are ranked); it is kept readable.
 */
import type { Finding } from '../../model.js';
import { ackedNotReceivedRule } from './acked-not-received.js';
import type { Context } from './context.js';
import { arrival } from './arrival.js';
import { failure } from './failure.js';
import { fallback } from './fallback.js';
import { mssClamp } from './mss-clamp.js';
import { insufficientData } from './insufficient-data.js';
import { kernelUnread } from './kernel-unread.js';
import { mechanism } from './mechanism.js';
import { noReply } from './no-reply.js';
import { pathSpecific } from './path-specific.js';
import { pmtuBlackhole } from './pmtu-blackhole.js';
import { rejection } from './rejection.js';
import { scatteredStalls } from './scattered-stalls.js';
import { sizeThreshold } from './size-threshold.js';
import { slow } from './slow.js';
import { stallOffset } from './stall-offset.js';
import { targetSpecific } from './target-specific.js';
import { timeout } from './timeout.js';
import { windowScaleRewrite } from './window-scale-rewrite.js';
import { windowScaling } from './window-scaling.js';

export type Rule = (ctx: Context) => Finding[];

export const RULES: readonly Rule[] = [
  pathSpecific,
  targetSpecific,
  sizeThreshold,
  pmtuBlackhole,
  stallOffset,
  mechanism,
  windowScaling,
  windowScaleRewrite,
  mssClamp,
  ackedNotReceivedRule,
  noReply,
  insufficientData,
  scatteredStalls,
  rejection,
  timeout,
  failure,
  fallback,
  kernelUnread,
  slow,
  arrival,
];

export { buildContext, type CompareOptions, type Context } from './context.js';
