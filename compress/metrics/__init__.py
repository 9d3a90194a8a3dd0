"""Offline evaluation metrics: FID / KID (Inception pool3), mIoU, and teacher-fidelity PSNR.

    from compress.metrics import inception_features, real_statistics, fid_from_features, miou, psnr
    real = real_statistics(lambda: real_uint8, stats_key("facades", "val", (256, 256)))
    fid = fid_from_features(inception_features(to_uint8_images(fake)), real)

mIoU of generated images needs a segmenter: ``compress.metrics.segmenter`` (trained with
``python -m compress.train_segmenter``) turns generated photos back into label maps.
"""
from compress.metrics.fid import (default_cache_dir, feature_statistics, fid_from_features, fid_from_images,
                                  frechet_distance, frechet_distance_from_features, kid_from_features,
                                  load_statistics, real_statistics, stats_key)
from compress.metrics.fidelity import psnr
from compress.metrics.inception import inception_features, load_inception, to_uint8_images
from compress.metrics.segmentation import confusion_matrix, iou_per_class, miou, pixel_accuracy

__all__ = ["inception_features", "load_inception", "to_uint8_images", "real_statistics", "load_statistics",
           "stats_key", "default_cache_dir", "feature_statistics", "frechet_distance",
           "frechet_distance_from_features", "fid_from_features", "fid_from_images", "kid_from_features",
           "confusion_matrix", "iou_per_class", "miou", "pixel_accuracy", "psnr"]
