// skopeo and containerd against a hosted berth whose storage is on S3 (Swift's s3api): copy --all in and out, byte for byte.
import "../support/on-s3.js";
import "./hosted-skopeo.test.js";
