from atomcollapse.cli import entry

entry()
