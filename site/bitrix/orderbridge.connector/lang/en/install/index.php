<?php
/* English texts of install/index.php. */
$MESS['ORDERBRIDGE_MODULE_NAME'] = 'orderbridge';
$MESS['ORDERBRIDGE_MODULE_DESCRIPTION'] = 'Sends every shop order, with its Roistat visit, to orderbridge, which relays it to Roistat and Bitrix24.';
$MESS['ORDERBRIDGE_NEED_SALE'] = 'orderbridge needs the "sale" (online store) module.';
$MESS['ORDERBRIDGE_VISIT_PROPERTY_NAME'] = 'Roistat visit';
$MESS['ORDERBRIDGE_DEAL_PROPERTY_NAME'] = 'Bitrix24 deal';
$MESS['ORDERBRIDGE_SALE_TOO_OLD'] = 'orderbridge needs the "sale" (online store) module #MIN# or later; this site has #VERSION#.';
$MESS['ORDERBRIDGE_INSTALL_TITLE'] = 'Installing orderbridge';
$MESS['ORDERBRIDGE_UNINSTALL_TITLE'] = 'Uninstalling orderbridge';
$MESS['ORDERBRIDGE_INSTALL_FAILED'] = 'The install was undone: #ERROR#';
$MESS['ORDERBRIDGE_UNINSTALL_FAILED'] = 'The module could not be uninstalled: #ERROR#';
$MESS['ORDERBRIDGE_PROPERTY_UTM_SOURCE'] = 'UTM source';
$MESS['ORDERBRIDGE_PROPERTY_UTM_MEDIUM'] = 'UTM medium';
$MESS['ORDERBRIDGE_PROPERTY_UTM_CAMPAIGN'] = 'UTM campaign';
$MESS['ORDERBRIDGE_PROPERTY_UTM_CONTENT'] = 'UTM content';
$MESS['ORDERBRIDGE_PROPERTY_UTM_TERM'] = 'UTM term';
