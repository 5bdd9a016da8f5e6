"""The conversation memory of a stream: the most recent turns of each of its conversations."""

from __future__ import annotations

from collections import OrderedDict, deque

from emotionaware.context import Turn
from gateway.metrics import STREAM_CONVERSATIONS


class ConversationStore:
    """The most recent turns of each conversation of one stream.

    Holds at most ``max_turns`` turns per conversation and ``max_conversations`` conversations;
    when full, the conversation used least recently is forgotten (its next message starts
    without context). The store lives and dies with its stream.
    """

    def __init__(self, max_turns: int, max_conversations: int) -> None:
        self._max_turns = max_turns
        self._max_conversations = max_conversations
        self._turns: OrderedDict[str, deque[Turn]] = OrderedDict()

    def history(self, conversation_id: str) -> tuple[Turn, ...]:
        """Earlier turns of a conversation, oldest first (empty for a new one)."""
        turns = self._turns.get(conversation_id)
        if turns is None:
            return ()
        self._turns.move_to_end(conversation_id)
        return tuple(turns)

    def append(self, conversation_id: str, turn: Turn) -> str | None:
        """Add a turn; the id of the conversation forgotten to make room for a new one, if any."""
        evicted = None
        turns = self._turns.get(conversation_id)
        if turns is None:
            if len(self._turns) >= self._max_conversations:
                evicted, _ = self._turns.popitem(last=False)
                STREAM_CONVERSATIONS.dec()
            turns = self._turns[conversation_id] = deque(maxlen=self._max_turns)
            STREAM_CONVERSATIONS.inc()
        self._turns.move_to_end(conversation_id)
        turns.append(turn)
        return evicted

    def end(self, conversation_id: str) -> None:
        """Forget a conversation that ended (its next message starts a new one)."""
        if self._turns.pop(conversation_id, None) is not None:
            STREAM_CONVERSATIONS.dec()

    def clear(self) -> None:
        STREAM_CONVERSATIONS.dec(len(self._turns))
        self._turns.clear()

    def __len__(self) -> int:
        return len(self._turns)
