from emotionaware.context import Turn, format_context
from gateway.conversations import ConversationStore


def test_context_is_newest_first_and_tagged_relative_to_the_speaker():
    turns = [Turn("ann", "I got the job!"), Turn("bob", "No way"), Turn("ann", "  Yes\nreally ")]
    assert format_context(turns, "bob", 8) == "other: Yes really | same: No way | other: I got the job!"
    assert format_context(turns, "ann", 2) == "same: Yes really | other: No way"
    assert format_context(turns, "ann", 0) == "" and format_context([], "ann", 8) == ""


def test_store_bounds_turns_and_forgets_the_least_recent_conversation():
    store = ConversationStore(max_turns=2, max_conversations=2)
    for i in range(3):
        store.append("a", Turn("x", f"a{i}"))
    assert [t.text for t in store.history("a")] == ["a1", "a2"]
    store.append("b", Turn("x", "b0"))
    store.history("a")  # a is now the most recently used
    store.append("c", Turn("x", "c0"))
    assert store.history("b") == () and len(store) == 2
    assert [t.text for t in store.history("a")] == ["a1", "a2"]
