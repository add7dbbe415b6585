import { buildImage, type BuiltImage } from "../test/support/oci-image-builder.js";
import { skopeoCopy } from "../test/support/skopeo.js";

/** A ustar archive of one file: a 512-byte header, the content, two 512-byte end blocks. */
const TAR_OVERHEAD = 512 + 1024;

/**
 * An OCI image whose layers are plain tars (random content cannot compress) of exactly the
 * given sizes (multiples of 512), streamed to disk. The same ref builds the same bytes.
 */
export function buildBenchImage(layoutDir: string, ref: string, layerSizes: number[]): Promise<BuiltImage> {
  for (const size of layerSizes) if (size % 512 !== 0 || size <= TAR_OVERHEAD) throw new Error(`layer size ${size} is not a tar size`);
  return buildImage(layoutDir, {
    ref,
    layers: layerSizes.map((size) => ({ size: size - TAR_OVERHEAD, compression: "none" })),
    seed: `berth-bench-${ref}`,
  });
}

/**
 * Pushes the image byte for byte: without `--preserve-digests` skopeo gzips plain-tar
 * layers on their way to a registry, and every digest changes.
 */
export async function pushImage(image: BuiltImage, reference: string): Promise<void> {
  await skopeoCopy(image.source, `docker://${reference}`, { preserveDigests: true });
}
