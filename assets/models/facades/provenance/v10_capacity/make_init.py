"""Warm start of the v10 candidate (issue 11): v5 narrowed to its top-L1 channels where v10 is
narrower, saved as a checkpoint that ``compress.distill --init_student`` then grows where v10 is
wider (the up-sampling path).

    PYTHONPATH=. python assets/models/facades/provenance/v10_capacity/make_init.py \
        --output=runs/v10_init.safetensors

v5 is ``24_16_16_32_16_16_16_8``; v10 is ``16_16_16_32_8_8_16_16``. Their per-position minimum,
``16_16_16_32_8_8_16_8``, is what pruning keeps; distillation then adds 8 fresh channels to the
last up-sampling layer (model.22), which draws the 128x128 feature map.
"""
import argparse

from compress.models.checkpoints import load_generator, save_generator
from compress.models.pruning import prune_resnet
from compress.models.search_space import encode_config, parse_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="assets/models/facades/provenance/v5_student.safetensors",
                        help="the student to narrow (default: v5, which was compressed.safetensors "
                             "when v10 was made)")
    parser.add_argument("--target", default="16_16_16_32_8_8_16_16", help="v10's config")
    parser.add_argument("--output", required=True, help="where to write the narrowed checkpoint")
    args = parser.parse_args()
    source, meta = load_generator(args.source)
    pairs = zip(parse_config(source.config), parse_config(args.target))
    narrow = encode_config([min(a, b) for a, b in pairs])
    model = prune_resnet(source, narrow)
    saved = save_generator(model, args.output, resolution=tuple(meta["resolution"]),
                           palette=meta.get("palette"), input_kind=meta.get("input_kind"),
                           pruned_from=args.source)
    print(f"{args.source} ({source.config}) -> {narrow}: {saved['macs'] / 1e6:.1f}M MACs, "
          f"written to {args.output}")


if __name__ == "__main__":
    main()
