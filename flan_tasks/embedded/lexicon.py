"""Small word lists the embedded datasets are generated from.

Kept deliberately small so a tiny model can learn the held-in tasks from surface cues in a few
hundred steps. The country fact base is shared by reading comprehension (passages state the
facts) and closed-book QA (asks them without a passage).
"""

from __future__ import annotations

FEMALE_NAMES = ("Anna", "Dana", "Fay", "Hana", "Jill", "Lena", "Nora", "Pia", "Rosa", "Vera", "Zoe", "Uma")
MALE_NAMES = ("Ben", "Carl", "Emil", "Gus", "Ivan", "Kai", "Max", "Omar", "Sam", "Tom", "Will", "Leo")
NAMES = FEMALE_NAMES + MALE_NAMES

COLORS = ("red", "blue", "green", "yellow", "black", "white")
OBJECTS = ("ball", "cup", "hat", "book", "kite", "lamp", "box", "coat", "bag", "pen")
PLACES = ("park", "shop", "school", "lake", "farm", "library", "market", "beach", "bank", "zoo")

POSITIVE = ("great", "excellent", "lovely", "perfect", "wonderful", "superb", "fantastic", "brilliant")
NEGATIVE = ("awful", "terrible", "useless", "horrible", "dreadful", "poor", "boring", "broken")
PRODUCTS = ("phone", "chair", "blender", "jacket", "camera", "kettle", "backpack", "lamp", "mixer", "watch")
MOVIE_PARTS = ("plot", "acting", "music", "ending", "script", "cast", "story", "soundtrack")
POSITIVE_VERDICTS = ("I would see it again.", "Loved every minute.", "Highly recommended.")
NEGATIVE_VERDICTS = ("I want my money back.", "A waste of time.", "Skip this one.")

# (plain word, synonym) pairs for the paraphrase data.
SYNONYMS = (
    ("big", "large"),
    ("small", "little"),
    ("quick", "fast"),
    ("happy", "glad"),
    ("old", "aged"),
    ("pretty", "lovely"),
    ("angry", "mad"),
    ("quiet", "silent"),
)
PARAPHRASE_VERBS = (("bought", "purchased"), ("saw", "noticed"), ("found", "discovered"), ("liked", "enjoyed"))

# English -> invented "Zolan", word by word (same word order).
ZOLAN = {
    "the": "ka",
    "a": "lu",
    "cat": "miro",
    "dog": "tavu",
    "bird": "kori",
    "fish": "sela",
    "horse": "barun",
    "child": "nemi",
    "sees": "nolu",
    "eats": "pima",
    "likes": "doza",
    "chases": "furo",
    "big": "zam",
    "small": "lin",
    "red": "rusa",
    "happy": "yoli",
    "old": "vek",
    "and": "e",
}
ZOLAN_NOUNS = ("cat", "dog", "bird", "fish", "horse", "child")
ZOLAN_VERBS = ("sees", "eats", "likes", "chases")
ZOLAN_ADJECTIVES = ("big", "small", "red", "happy", "old")

# Invented countries: (country, capital, flag color). The closed-book fact base.
COUNTRIES = (
    ("Velmora", "Tarsk", "green"),
    ("Oskaria", "Brin", "red"),
    ("Dunwal", "Pell", "blue"),
    ("Ferania", "Kosto", "yellow"),
    ("Glimmer", "Arvo", "white"),
    ("Hestia", "Moro", "black"),
    ("Istra", "Vane", "green"),
    ("Jorvik", "Salt", "blue"),
    ("Kalda", "Umbo", "red"),
    ("Lumen", "Dorr", "yellow"),
    ("Marsh", "Eldon", "black"),
    ("Norvo", "Quill", "white"),
)

WINO_PAIRS = (
    ("trophy", "suitcase"),
    ("ball", "box"),
    ("book", "bag"),
    ("cake", "tin"),
    ("lamp", "crate"),
    ("coat", "drawer"),
    ("toy", "basket"),
    ("chair", "van"),
)
