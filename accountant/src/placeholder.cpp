// Placeholder so the target has a source; deleted once the folder has real sources.
