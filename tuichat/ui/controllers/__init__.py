"""What the main screen's user does, carried out: the chat (rooms, writing,
sending, the selected message), files, and people and trust."""
