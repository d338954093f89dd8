"""Shared types every layer uses and none owns: errors (`errors`), the model bundle
(`bundle`), the repository paths (`paths`) and the hub reachability check (`hub`).
Imports nothing from the rest of the project, so loft/, tasks/ and scripts/ can all use it."""
