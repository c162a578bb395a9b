// The bounds of a config file, in a leaf: the reader (config.ts) applies the size before it
// reads the file and must not load the schema to know it.

/** Bounds of the file itself: checking it must stay fast and small, whatever it holds (about 3 s and 250 MB at most). */
export const CONFIG_LIMITS = { bytes: 1024 ** 2, queues: 1000, listItems: 256 }
