/** fedmsg topic construction: `<topic_prefix>.<environment>.<modname>.<topic>`. */
export interface TopicParts {
  readonly topicPrefix: string
  readonly environment: string
}

/**
 * The full topic for `topic` published by `modname`. A topic that already
 * starts with `<topicPrefix>.` is taken as full and returned unchanged (fedmsg
 * would prepend the modname first; gilmsg lets callers pass full topics).
 */
export function fullTopic(parts: TopicParts, modname: string, topic: string): string {
  if (topic.startsWith(parts.topicPrefix + '.') || topic === parts.topicPrefix) return topic
  return [parts.topicPrefix, parts.environment, modname, topic].filter((s) => s !== '').join('.')
}

/** The topic prefix that selects everything of this prefix and environment. */
export function environmentPrefix(parts: TopicParts): string {
  return `${parts.topicPrefix}.${parts.environment}.`
}
