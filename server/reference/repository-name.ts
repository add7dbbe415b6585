// distribution-spec: <name> = [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
const COMPONENT = "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*";
const NAME_PATTERN = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Longest repository name berth accepts (Distribution's limit), so every name fits in a path. */
export const MAX_NAME_LENGTH = 255;

export function isRepositoryName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

export function isTag(tag: string): boolean {
  return TAG_PATTERN.test(tag);
}
