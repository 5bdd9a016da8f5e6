"""Write examples/support-tickets.csv: invented customer-support messages for trying the service.

Every message is composed from the hand-written sentence pools below with a fixed seed, so the
file is the same on every run:

    python examples/make_tickets.py            # (re)write examples/support-tickets.csv
    python examples/make_tickets.py --check    # exit 1 if the committed file differs

Columns: id, created_at (UTC, ISO 8601, over three weeks), customer, channel, subject, text.
The texts vary in tone (angry, grateful, confused, worried, neutral, mixed) and length; some
hold quotes, commas and line breaks (quoted CSV fields), and a few are blank.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parent / "support-tickets.csv"
SEED = 20261201
ROWS = 320
START = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)
DAYS = 21

FIRST = [
    "Amira",
    "Ben",
    "Carla",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemi",
    "Liam",
    "Mei",
    "Nora",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Victor",
    "Wen",
    "Yusuf",
    "Zoe",
    "Aaron",
    "Bea",
    "Chidi",
    "Dana",
    "Emil",
]
LAST = [
    "Haddad",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Patel",
    "Novak",
    "García",
    "Kowalski",
    "Nakamura",
    "O'Brien",
    "Schmidt",
    "Rossi",
    "Mensah",
    "Fischer",
    "Costa",
    "Ivanova",
    "Dubois",
    "Kim",
]
CHANNELS = ["email", "email", "email", "chat", "chat", "web form", "phone (transcribed)", "app review"]

# Topics: a subject and the sentences that state the problem. {order}, {amount}, {days},
# {product} and {plan} are filled in per ticket.
TOPICS: dict[str, dict[str, list[str]]] = {
    "delivery": {
        "subject": [
            "Where is my order {order}?",
            "Order {order} not delivered",
            "Late delivery",
            "Parcel marked delivered but not here",
        ],
        "issue": [
            "I ordered the {product} {days} days ago and it still hasn't arrived.",
            'The tracking page has said "out for delivery" since Tuesday.',
            "The parcel for order {order} was marked as delivered, but nothing was left at my door.",
            "The courier left a note saying nobody was home, but I was home all day.",
            "My order {order} was split into two parcels and only one of them came.",
        ],
    },
    "billing": {
        "subject": [
            "Charged twice",
            "Wrong amount on my invoice",
            "Question about my bill",
            "Unexpected charge of {amount}",
        ],
        "issue": [
            "I was charged {amount} twice for the same order.",
            "My invoice shows {amount}, but the price on the website was lower.",
            "There is a charge of {amount} on my card that I don't recognise.",
            "I cancelled my {plan} plan last month, and I was billed again anyway.",
            "The discount code was accepted at checkout, but it isn't on the invoice.",
        ],
    },
    "login": {
        "subject": [
            "Can't log in",
            "Locked out of my account",
            "Password reset not working",
            "Two-factor code never arrives",
        ],
        "issue": [
            "I can't log in to my account since this morning.",
            'The app keeps saying "Session expired, please log in again", even right after I log in.',
            "I requested a password reset three times, and no email came.",
            "The two-factor code arrives after it has already expired.",
            "My account was locked after one wrong password, which seems strict.",
        ],
    },
    "refund": {
        "subject": [
            "Refund for order {order}",
            "Still waiting for my refund",
            "Return and refund",
            "Refund status",
        ],
        "issue": [
            "I returned the {product} {days} days ago and I haven't seen the refund yet.",
            "You confirmed my return of order {order}, but the refund is {amount} short.",
            "I was told the refund would take 5 working days; it has been {days}.",
            "The return label you sent me doesn't work at the post office.",
        ],
    },
    "defect": {
        "subject": [
            "{product} stopped working",
            "Broken on arrival",
            "Faulty {product}",
            "Problem with my new {product}",
        ],
        "issue": [
            "The {product} stopped working after {days} days.",
            "The {product} arrived with a cracked case and a bent cable.",
            "The battery of the {product} drains overnight, even when it's switched off.",
            "The {product} makes a loud clicking noise whenever it starts.",
            "One of the buttons on the {product} is stuck, so I can't change the settings.",
        ],
    },
    "subscription": {
        "subject": ["Changing my plan", "Cancel subscription", "Upgrade to {plan}", "Subscription renewal"],
        "issue": [
            "I'd like to move from the Basic plan to {plan}.",
            "I want to cancel my subscription before it renews on the 1st.",
            "My {plan} plan renewed automatically, and I never got a reminder.",
            "Is it possible to pause the subscription for two months while I'm travelling?",
        ],
    },
    "app": {
        "subject": [
            "App crashes on start",
            "Sync problem",
            "App update broke things",
            "Feature not working in the app",
        ],
        "issue": [
            "Since the last update, the app crashes as soon as I open it.",
            "My notes don't sync between my phone and my laptop anymore.",
            "The export button does nothing; no file, no error, nothing.",
            "After the update, all my saved settings were reset to the defaults.",
            'The app shows an error that says "Something went wrong (code 503)" and then closes.',
        ],
    },
    "question": {
        "subject": ["Quick question", "Question about the {product}", "Before I order", "Warranty question"],
        "issue": [
            "Does the {product} work with the older charger, or do I need the new one?",
            "How long is the warranty on the {product}?",
            "Can I change the delivery address for order {order} after it has shipped?",
            "Do you ship to Norway, and if so, how long does it take?",
            "Is the {plan} plan billed monthly or yearly?",
        ],
    },
    "praise": {
        "subject": ["Thank you!", "Great service", "Just wanted to say thanks", "Compliments to your team"],
        "issue": [
            "The {product} arrived a day early and works perfectly.",
            "Your colleague on the chat yesterday sorted out my refund in five minutes.",
            "The replacement {product} came quickly, and the problem is gone.",
            "I was worried about the move to the new app, but it went smoothly.",
        ],
    },
}

PRODUCTS = [
    "wireless headphones",
    "coffee grinder",
    "smart thermostat",
    "e-reader",
    "desk lamp",
    "fitness tracker",
    "kettle",
    "webcam",
    "bike light",
    "baby monitor",
]
PLANS = ["Plus", "Family", "Pro", "Premium"]

# Tone: what the customer feels about it, before and after the facts.
TONES: dict[str, dict[str, list[str]]] = {
    "angry": {
        "open": [
            "This is unacceptable.",
            "I am really angry right now.",
            "Honestly, I'm furious.",
            "I've had enough.",
            "This is the worst service I have ever had.",
        ],
        "feel": [
            "Nobody has answered my last two emails, and I'm sick of waiting.",
            "I've been on hold for forty minutes, twice, and got cut off both times.",
            'Your so-called "priority support" is a joke.',
            "I'm paying for this, and it's ridiculous that I have to chase you.",
            "If this isn't fixed by Friday, I will cancel and tell everyone I know.",
            "I'm disgusted by how you treat loyal customers.",
        ],
        "close": [
            "Fix it now.",
            "I expect a refund, not another apology.",
            "Sort this out today.",
            "Don't send me another template reply.",
        ],
    },
    "grateful": {
        "open": [
            "Thank you so much!",
            "I just wanted to say thanks.",
            "What a lovely surprise.",
            "I'm really impressed.",
        ],
        "feel": [
            "You went above and beyond, and I really appreciate it.",
            "It's rare to get such friendly, quick help these days.",
            "I'll definitely recommend you to my friends.",
            "It made my week, honestly.",
            "Please pass my thanks on to the whole team.",
        ],
        "close": [
            "Thanks again!",
            "Keep up the great work.",
            "Have a wonderful day.",
            "Best wishes, and thank you.",
        ],
    },
    "confused": {
        "open": [
            "I'm a bit confused.",
            "Sorry if this is a silly question.",
            "I don't quite understand.",
            "Maybe I'm missing something here.",
        ],
        "feel": [
            "The help page says one thing and the app says another.",
            "I followed the steps in the guide, but I'm not sure I did it right.",
            'I don\'t understand what "pending reconciliation" means on my account.',
            "Which of the two emails I got is the correct one?",
            "I'm not sure whether I need to do anything or just wait.",
        ],
        "close": [
            "Could you explain what I should do?",
            "Any help would be appreciated.",
            "What am I supposed to do next?",
            "Can someone clarify, please?",
        ],
    },
    "worried": {
        "open": [
            "I'm quite worried about this.",
            "I'm getting nervous.",
            "I'm a little anxious about this.",
            "I hope this is nothing serious.",
        ],
        "feel": [
            "It was meant to be a birthday present, and the party is on Saturday.",
            "I'm afraid someone else may have access to my account.",
            "I'm on a tight budget this month, and I can't afford to lose that money.",
            "I'm scared the device could overheat while my daughter is using it.",
            "I leave the country next week, and I need this sorted before then.",
        ],
        "close": [
            "Please let me know as soon as you can.",
            "I'd be grateful for a quick reply.",
            "Could you reassure me that it's in hand?",
            "Please tell me what happens now.",
        ],
    },
    "neutral": {
        "open": [
            "I'm writing about my account.",
            "A short message about my order.",
            "I'm writing on behalf of my mother, who has an account with you.",
            "Here are the details you asked for.",
        ],
        "feel": [
            "The order number is {order}.",
            "I have attached a photo of the receipt.",
            "My account email is the one I'm writing from.",
            "I'm available on weekdays after 5 pm if you need to call.",
        ],
        "close": ["Thanks.", "Regards.", "Kind regards.", "Thank you."],
    },
}

# Mixed tickets: a bit of praise and a bit of complaint in one message.
MIXED = [
    "I love the {product}, but this has been a frustrating experience.",
    "Your chat agent was lovely, but the problem still isn't fixed.",
    "I've been a happy customer for years, which is why this is so disappointing.",
    "I'm glad someone finally replied, but honestly, it shouldn't have taken two weeks.",
    "Thanks for getting back to me so fast, even if the answer wasn't what I hoped for.",
    "The product is great; the support, so far, not so much.",
]

# A grateful customer writing about a problem that is solved now.
RESOLVED = [
    "Your team sorted it out within the hour.",
    "It's all fixed now, thanks to your colleague on the chat.",
    "Someone called me back the same day and put it right.",
    "Everything works again, and you even added a voucher for the trouble.",
]

# Extra detail for the long messages.
DETAILS = [
    "For context, I first contacted you on the 12th, and I was told someone would call me back within"
    " 24 hours, which never happened.",
    "I've already tried restarting it, reinstalling the app, and resetting it to factory settings, as"
    " suggested in your FAQ.",
    "My neighbour, who ordered the same thing on the same day, got hers on time, so I don't understand"
    " what went wrong with mine.",
    'The agent I spoke to, Mark, said it was "a known issue" and that it would be fixed in the next'
    " update, but that was a month ago.",
    "I work from home, so I rely on this every day; without it, I can't take calls with my clients.",
    "I've attached screenshots of the error, the order confirmation and the bank statement.",
    "To be fair, the product itself is good when it works, and I'd like to keep it if we can find a fix.",
    "I've checked my spam folder, my other email address and the app notifications, and there's nothing.",
]

TONE_WEIGHTS = {"angry": 20, "grateful": 12, "confused": 14, "worried": 14, "neutral": 22, "mixed": 18}


def details(rng: random.Random) -> dict[str, object]:
    """One ticket's order number, amount, product...: the same in its subject and its text."""
    return {
        "order": f"#{rng.randint(100000, 999999)}",
        "amount": f"€{rng.randint(9, 249)}.{rng.choice(['00', '49', '99'])}",
        "days": rng.randint(3, 21),
        "product": rng.choice(PRODUCTS),
        "plan": rng.choice(PLANS),
    }


def compose(topic: str, tone: str, long: bool, rng: random.Random) -> list[str]:
    issue = TOPICS[topic]["issue"]
    if tone == "mixed":
        parts = [rng.choice(issue), rng.choice(MIXED), rng.choice(TONES["worried"]["close"])]
    else:
        pool = TONES[tone]
        parts = [rng.choice(pool["open"]), rng.choice(issue)]
        if tone == "grateful" and topic != "praise":
            parts.append(rng.choice(RESOLVED))
        parts += rng.sample(pool["feel"], 2 if long else 1)
        parts.append(rng.choice(pool["close"]))
    if long:
        parts[2:2] = rng.sample(DETAILS, 2)
    return parts


def as_email(text: str, name: str, rng: random.Random) -> str:
    """A message with a greeting, paragraphs and a signature: line breaks inside the CSV field."""
    sentences = text.split(". ")
    cut = len(sentences) // 2
    body = ". ".join(sentences[:cut]) + ".\n\n" + ". ".join(sentences[cut:]) if cut else text
    return f"{rng.choice(['Hi,', 'Hello,', 'Dear support team,'])}\n\n{body}\n\n{name.split()[0]}"


def rows() -> list[dict[str, str]]:
    rng = random.Random(SEED)
    customers = [
        f"{f} {last}" for f, last in zip(rng.sample(FIRST, 30), rng.choices(LAST, k=30), strict=True)
    ]
    times = sorted(START + timedelta(seconds=rng.randrange(DAYS * 24 * 3600)) for _ in range(ROWS))
    blank = set(rng.sample(range(ROWS), 3))
    topics, tones = list(TOPICS), list(TONE_WEIGHTS)
    out = []
    for i, created in enumerate(times):
        customer = rng.choice(customers)
        channel = rng.choice(CHANNELS)
        tone = rng.choices(tones, weights=[TONE_WEIGHTS[t] for t in tones])[0]
        # Praise only from grateful customers; questions are not asked in anger.
        other = [t for t in topics if t != "praise" and not (t == "question" and tone == "angry")]
        topic = "praise" if tone == "grateful" and rng.random() < 0.6 else rng.choice(other)
        long = rng.random() < 0.2
        values = details(rng)
        text = " ".join(p.format(**values) for p in compose(topic, tone, long, rng))
        if channel == "email" and (long or rng.random() < 0.15):
            text = as_email(text, customer, rng)
        if i in blank:
            text = rng.choice(["", " ", ""])
        out.append(
            {
                "id": f"T-{10001 + i}",
                "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "customer": customer,
                "channel": channel,
                "subject": rng.choice(TOPICS[topic]["subject"]).format(**values),
                "text": text,
            }
        )
    return out


def render() -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=["id", "created_at", "customer", "channel", "subject", "text"], lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows())
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead")
    args = parser.parse_args()
    text = render()
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.name}: {'up to date' if same else 'differs; run python examples/make_tickets.py'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.name}: {ROWS} tickets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
