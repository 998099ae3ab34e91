<?php
/* Русские тексты install/index.php. */
$MESS['ORDERBRIDGE_MODULE_NAME'] = 'orderbridge';
$MESS['ORDERBRIDGE_MODULE_DESCRIPTION'] = 'Передаёт каждый заказ магазина вместе с визитом Roistat в orderbridge, который отправляет его в Roistat и Битрикс24.';
$MESS['ORDERBRIDGE_NEED_SALE'] = 'Для orderbridge нужен модуль «Интернет-магазин» (sale).';
$MESS['ORDERBRIDGE_VISIT_PROPERTY_NAME'] = 'Визит Roistat';
$MESS['ORDERBRIDGE_DEAL_PROPERTY_NAME'] = 'Сделка Битрикс24';
