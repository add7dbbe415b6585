// The HTTP suite again, with berth's storage on S3 (Swift's s3api): every file of test/http.
import "../support/on-s3.js";
import "./base-and-errors.test.js";
import "./conformance-workflows.test.js";
import "./content-management.test.js";
import "./mount.test.js";
import "./names-and-references.test.js";
import "./pull-blobs.test.js";
import "./pull-manifests.test.js";
import "./push-blobs-chunked.test.js";
import "./push-blobs-monolithic.test.js";
import "./push-manifests.test.js";
import "./push-tags.test.js";
import "./referrers.test.js";
import "./tags-and-catalog.test.js";
