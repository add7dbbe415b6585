// The full crash campaign again, with berth's storage on S3 (Swift's s3api); the store audit reads the bucket.
import "../support/on-s3.js";
import "./crash-safety.stress.js";
