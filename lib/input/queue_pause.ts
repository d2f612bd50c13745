/**
 * What `seedtask pause` / `resume` and `POST /pause` / `POST /resume` take: a task type, and
 * optionally one domain, a reason and who pauses.
 */
import { z } from "zod";
import { text } from "./fields.ts";
import { MAX_NAME_LENGTH, NewTaskObject } from "./new_task.ts";

/** Longest pause reason, in characters. */
export const MAX_REASON_LENGTH = 1_000;

const TARGET = {
  type: NewTaskObject.shape.type,
  domain: text("domain", MAX_NAME_LENGTH).optional()
    .meta({ description: "Only this domain (default: every domain of the type)" }),
};

/** The fields of a pause by their JSON names; the CLI's flags map to them. */
export const PauseSchema = z.strictObject({
  ...TARGET,
  reason: text("reason", MAX_REASON_LENGTH).optional()
    .meta({ description: "Why, for whoever looks at `seedtask paused`" }),
  by: text("by", MAX_NAME_LENGTH).optional()
    .meta({ description: "Who pauses (default: user@host on the CLI, `http` over HTTP)" }),
});

/** The fields of a resume by their JSON names. */
export const ResumeSchema = z.strictObject(TARGET);
