"""Everything that talks to nio and the homeserver. No Textual here.

Importing this package imports nothing heavy: modules that need nio
(`service`, `decryption`, `login`) import it themselves.
"""
