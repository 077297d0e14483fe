// Loads the webhookd contract from protos/ at run time with
// @grpc/proto-loader and returns the WebhookService client constructor.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTOS = path.join(__dirname, '..', '..', 'protos');

function loadService() {
  const definition = protoLoader.loadSync('webhook/v1/webhook_service.proto', {
    includeDirs: [PROTOS],
    keepCase: false,  // lowerCamelCase fields, as in protobuf JSON
    longs: String,    // int64 as strings: no precision lost
    enums: String,    // enum names, e.g. "DELIVERY_STATUS_SUCCESS"
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).webhook.v1.WebhookService;
}

module.exports = {grpc, loadService};
