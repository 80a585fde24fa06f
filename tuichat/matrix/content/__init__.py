"""Matrix events as data: raw events to timeline items, formatted bodies,
what the composer sends, room state, file messages, direct-message rooms."""
