"""The 40 CelebA attributes and the rates SynthFaces draws them at: CelebA's imbalance
levels (CLMLE, docs/papers.md section 5), overall and given gender."""

from __future__ import annotations

from statistics import NormalDist

ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

# |positive rate - 50| in percent, as CLMLE lists them (docs/papers.md section 5).
IMBALANCE_LEVEL: dict[str, int] = {
    "5_o_Clock_Shadow": 39, "Arched_Eyebrows": 26, "Attractive": 1, "Bags_Under_Eyes": 31,
    "Bald": 48, "Bangs": 35, "Big_Lips": 27, "Big_Nose": 28, "Black_Hair": 26,
    "Blond_Hair": 35, "Blurry": 45, "Brown_Hair": 30, "Bushy_Eyebrows": 36, "Chubby": 44,
    "Double_Chin": 45, "Eyeglasses": 44, "Goatee": 44, "Gray_Hair": 46, "Heavy_Makeup": 18,
    "High_Cheekbones": 8, "Male": 11, "Mouth_Slightly_Open": 2, "Mustache": 46,
    "Narrow_Eyes": 38, "No_Beard": 35, "Oval_Face": 22, "Pale_Skin": 46, "Pointy_Nose": 23,
    "Receding_Hairline": 42, "Rosy_Cheeks": 44, "Sideburns": 44, "Smiling": 3,
    "Straight_Hair": 30, "Wavy_Hair": 22, "Wearing_Earrings": 33, "Wearing_Hat": 45,
    "Wearing_Lipstick": 5, "Wearing_Necklace": 38, "Wearing_Necktie": 43, "Young": 29,
}

# The level does not say which side is the majority; in CelebA the positives are the majority
# for these three (Attractive 51%, No_Beard 85%, Young 79%) and the minority for all others.
MAJORITY_POSITIVE: frozenset[str] = frozenset({"Attractive", "No_Beard", "Young"})

# Attributes that vary from image to image of one person; all others are fixed per identity.
IMAGE_ATTRIBUTES: frozenset[str] = frozenset({
    "Blurry", "Eyeglasses", "Heavy_Makeup", "Mouth_Slightly_Open", "Smiling",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie",
})


def positive_rate(attribute: str) -> float:
    """Target fraction of positives of one attribute (from its imbalance level)."""
    level = IMBALANCE_LEVEL[attribute] / 100
    return 0.5 + level if attribute in MAJORITY_POSITIVE else 0.5 - level


P_MALE = positive_rate("Male")

# Share of an attribute's positives that are male, so that attributes co-occur with gender as
# in CelebA (lipstick on women, neckties on men) while the overall rate stays the target.
# Attributes not listed are independent of gender.
_MALE_SHARE = {
    "Arched_Eyebrows": 0.1, "Attractive": 0.25, "Bags_Under_Eyes": 0.6, "Bald": 1.0,
    "Bangs": 0.2, "Big_Lips": 0.35, "Big_Nose": 0.75, "Blond_Hair": 0.2, "Bushy_Eyebrows": 0.7,
    "Chubby": 0.75, "Double_Chin": 0.7, "Eyeglasses": 0.6, "Heavy_Makeup": 0.0,
    "High_Cheekbones": 0.3, "Oval_Face": 0.3, "Pale_Skin": 0.3, "Pointy_Nose": 0.25,
    "Receding_Hairline": 0.75, "Rosy_Cheeks": 0.1, "Sideburns": 1.0, "Wavy_Hair": 0.2,
    "Wearing_Earrings": 0.05, "Wearing_Lipstick": 0.0, "Wearing_Necklace": 0.0,
    "Wearing_Necktie": 1.0, "Young": 0.33,
}


def _rate_given_gender(attribute: str, male: bool) -> float:
    share = _MALE_SHARE.get(attribute, P_MALE)
    p = positive_rate(attribute)
    return p * share / P_MALE if male else p * (1 - share) / (1 - P_MALE)


# Identity attributes that threshold a continuous latent trait: the trait also drives the
# geometry, so a Big_Nose face is the tail of a continuum of nose sizes, not a separate kind.
_THRESHOLDED = (
    "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Big_Lips", "Big_Nose",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "High_Cheekbones", "Narrow_Eyes", "Oval_Face",
    "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Young",
)
_NORMAL = NormalDist()
_BLURRY_SIGMA = (3.0, 5.0)        # Gaussian blur of Blurry images, pixels of a 250x250 image
