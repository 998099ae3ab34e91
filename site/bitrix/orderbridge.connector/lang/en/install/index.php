<?php
/* English texts of install/index.php. */
$MESS['ORDERBRIDGE_MODULE_NAME'] = 'orderbridge';
$MESS['ORDERBRIDGE_MODULE_DESCRIPTION'] = 'Sends every shop order, with its Roistat visit, to orderbridge, which relays it to Roistat and Bitrix24.';
$MESS['ORDERBRIDGE_NEED_SALE'] = 'orderbridge needs the "sale" (online store) module.';
$MESS['ORDERBRIDGE_VISIT_PROPERTY_NAME'] = 'Roistat visit';
$MESS['ORDERBRIDGE_DEAL_PROPERTY_NAME'] = 'Bitrix24 deal';
